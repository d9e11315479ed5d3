"""Phenomena in the app: results from stored runs (store, then gallery), verdict tables, cached cards.

A phenomenon's result is shown only when every run it needs is stored; nothing here trains. Figures
come from the phenomenon itself (`ph.figures`), which draws the prediction on each; a phenomenon whose
figures fail still shows its verdict. (The home page's cards are in `cards.py`.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from learnmech_core import phenomena
from learnmech_core.data import display_name
from learnmech_core.phenomena.base import Verdict

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


def result(ph, size: str, archs, datasets) -> tuple[list, Result | None]:
    """(specs, result) where result is None unless every run is stored (store first, then gallery)."""
    specs = ph.specs(size, archs or None, datasets or None)
    keys = tuple(spec.key() for spec in specs)
    where = tuple(resources.locate(k) for k in keys)
    if not all(where):
        return specs, None
    return specs, _result(ph.name, keys, where)


@st.cache_resource(show_spinner=False, max_entries=32)
def _result(name: str, keys: tuple, where: tuple) -> Result:
    """Runs and verdict of a complete set of stored runs (shared read-only by all sessions)."""
    ph = safe_get(name)
    runs = [resources.load_run(k)[0] for k in keys]
    if any(r is None for r in runs) or ph is None:
        return Result([r for r in runs if r is not None], None, "some runs could not be read", list(where))
    verdict, problem = None, ""
    try:
        verdict = ph.verdict(runs)
    except Exception as err:  # a verdict that cannot be computed is shown as such
        problem = f"the verdict could not be computed ({type(err).__name__}: {err})"
    return Result(runs, verdict, problem, list(where))


def result_figures(ph, res: Result, normalised: bool, presentation: bool) -> tuple[list, str]:
    """The phenomenon's figures of a stored result (cached: drawing them can take a second)."""
    keys = tuple(r.spec.key() for r in res.runs)
    return _result_figures(ph.name, keys, tuple(res.sources), normalised, presentation)


@st.cache_resource(show_spinner=False, max_entries=64)
def _result_figures(name: str, keys: tuple, where: tuple, normalised: bool, presentation: bool):
    res = _result(name, keys, where)
    return figures(safe_get(name), res.runs, res.verdict, normalised, presentation)


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
        row = {"run": f"{r.get('arch', '')} · {display_name(r.get('dataset', ''))}", "key": r.get("key", ""),
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
