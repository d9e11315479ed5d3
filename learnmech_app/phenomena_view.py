"""Phenomena in the app: results from stored runs (store, then gallery), verdict tables, cached cards.

A phenomenon's result is shown only when every run it needs is stored; nothing here trains. Figures
come from the phenomenon itself (`ph.figures`), which draws the prediction on each; a phenomenon whose
figures fail still shows its verdict. Cards on the home page are cached per gallery version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from learnmech_core import phenomena
from learnmech_core.phenomena.base import Verdict
from learnmech_core.plots import runs as prun
from learnmech_core.store import gallery_root

from . import resources

DIRECTION_TEXT = {
    "solvable": "Settings simple enough to solve exactly (deep linear networks, kernels, modular arithmetic), where "
                "theory predicts whole learning curves.",
    "limits": "Infinite width, depth or data: limits such as the neural tangent kernel and mean field in which "
              "training becomes tractable, and where real networks sit between them.",
    "laws": "Macroscopic regularities (scaling laws, conservation laws) that hold whatever the microscopic details.",
    "hyperparameters": "Theories that say how to set learning rate, batch size and width, and how settings transfer "
                       "from small models to large ones.",
    "universal": "Behaviours seen across architectures and datasets: the edge of stability, heavy-tailed spectra, "
                 "Hessian outliers, neural collapse.",
}


def safe_names() -> list[str]:
    """Registered phenomena; an empty list (not an exception) while modules are being written."""
    try:
        return phenomena.names()
    except Exception:  # one module half-written: keep the others
        out = []
        for name in getattr(phenomena, "_MODULES", ()):
            try:
                phenomena.get(name)
                out.append(name)
            except Exception:
                continue
        return out


def safe_get(name: str):
    try:
        return phenomena.get(name)
    except Exception:
        return None


@dataclass
class Result:
    runs: list
    verdict: Verdict | None
    verdict_error: str
    sources: list[str]


def stored_runs(ph, size: str, archs, datasets) -> tuple[list, list, list[str]]:
    """(specs, runs found in store or gallery (None where missing), source per run)."""
    specs = ph.specs(size, archs or None, datasets or None)
    found, where = [], []
    for spec in specs:
        run, source = resources.load_run(spec.key())
        found.append(run)
        where.append(source)
    return specs, found, where


def result(ph, size: str, archs, datasets) -> tuple[list, Result | None]:
    """(specs, result) where result is None unless every run is stored."""
    specs, found, where = stored_runs(ph, size, archs, datasets)
    if any(r is None for r in found):
        return specs, None
    verdict, problem = None, ""
    try:
        verdict = ph.verdict(found)
    except Exception as err:  # a verdict that cannot be computed is shown as such
        problem = f"the verdict could not be computed ({type(err).__name__}: {err})"
    return specs, Result(found, verdict, problem, where)


def figures(ph, runs, verdict, normalised: bool, presentation: bool) -> tuple[list, str]:
    """The phenomenon's figures, or ([], reason) when they fail."""
    try:
        return list(ph.figures(runs, verdict, normalised=normalised, presentation=presentation) or []), ""
    except Exception as err:
        return [], f"figures could not be drawn ({type(err).__name__}: {err})"


def summary(verdict: Verdict | None) -> str:
    if verdict is None:
        return "no verdict"
    try:
        return verdict.summary()
    except Exception:
        return f"measured {verdict.measured}"


def verdict_table(verdict: Verdict) -> pd.DataFrame:
    """Per run: measured, expected, tolerance, pass/fail and the run's other numbers; then the overall row."""
    rows = []
    for r in verdict.per_run:
        row = {"run": f"{r.get('arch', '')} · {r.get('dataset', '')}", "key": r.get("key", ""),
               "status": r.get("status", ""), "measured": r.get("measured"), "expected": verdict.expected,
               "tolerance": verdict.tolerance, "verdict": _word(r.get("passed"))}
        for k, v in r.items():
            if k not in row and k not in ("arch", "dataset", "passed") and isinstance(v, (int, float, str)):
                row[k] = v
        rows.append(row)
    rows.append({"run": "overall", "key": "", "status": "", "measured": verdict.measured, "expected": verdict.expected,
                 "tolerance": verdict.tolerance, "verdict": _word(verdict.passed)})
    table = pd.DataFrame(rows)
    return table


def _word(passed) -> str:
    return {True: "holds", False: "fails"}.get(passed, "n/a")


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"


# ------------------------------------------------------------------------------------------------
# home-page cards (gallery only, cached per gallery version)


def _gallery_stamp() -> float:
    runs = gallery_root() / "runs"
    return runs.stat().st_mtime if runs.is_dir() else 0.0


@st.cache_resource(show_spinner=False, max_entries=64)
def _card(name: str, stamp: float, presentation: bool) -> dict:
    ph = safe_get(name)
    if ph is None:
        return {"state": "missing"}
    try:
        specs = ph.specs("quick")
    except Exception as err:
        return {"state": "error", "message": str(err)}
    g = resources.gallery()
    runs = []
    for spec in specs:
        run = g.get(spec.key()) if g.has(spec.key()) else None
        if run is None:
            return {"state": "absent", "n": len(specs), "have": len(runs)}
        runs.append(run)
    try:
        verdict = ph.verdict(runs)
    except Exception as err:
        return {"state": "error", "message": f"verdict failed: {err}"}
    figs, _ = figures(ph, runs, verdict, True, False)
    thumb = prun.thumbnail(figs[0], height=230 if presentation else 190) if figs else None
    return {"state": "ok", "passed": bool(verdict.passed), "summary": summary(verdict), "figure": thumb}


def card(name: str, presentation: bool = False) -> dict:
    """What the home page shows of a phenomenon: state ok (figure, verdict), absent, error."""
    return _card(name, _gallery_stamp(), presentation)


def warm_cards() -> int:
    """Fill the home page's card cache (called in the background at server start); returns cards built."""
    n = 0
    for name in safe_names():
        try:
            card(name, False)
            n += 1
        except Exception:
            continue
    return n
