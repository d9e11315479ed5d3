"""Phenomena in the app: results from stored runs (store, then gallery), verdict tables, cached cards.

A phenomenon's result is shown only when every run it needs is stored; nothing here trains. Figures
come from the phenomenon itself (`ph.figures`), which draws the prediction on each; a phenomenon whose
figures fail still shows its verdict. (The home page's cards are in `cards.py`.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from learnmech_core import phenomena
from learnmech_core.data import display_name
from learnmech_core.phenomena import runner
from learnmech_core.phenomena.base import Verdict, combine_seeds

from . import resources


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
    runs: list  # every seed's runs, seed by seed
    verdict: Verdict | None  # combined over seeds
    verdict_error: str
    sources: list[str]
    per_seed: dict = field(default_factory=dict)  # seed -> Verdict
    seed_runs: dict = field(default_factory=dict)  # seed -> runs


def result(ph, size: str, archs, datasets, seeds=(0,)) -> tuple[list, Result | None]:
    """(specs of every seed, result) where result is None unless every run is stored (store, then gallery)."""
    by_seed = runner.all_specs(ph.name, size, archs or None, datasets or None, seeds)  # ValueError names a bad choice
    specs = [s for grid in by_seed.values() for s in grid]
    keys = tuple(tuple(spec.key() for spec in grid) for grid in by_seed.values())
    where = tuple(resources.locate(k) for grid in keys for k in grid)
    if not all(where):
        return specs, None
    return specs, _result(ph.name, tuple(by_seed), keys, where)


@st.cache_resource(show_spinner=False, max_entries=32)
def _result(name: str, seeds: tuple, keys: tuple, where: tuple) -> Result:
    """Runs and verdicts of a complete set of stored runs (shared read-only by all sessions)."""
    ph = safe_get(name)
    seed_runs = {s: [resources.load_run(k)[0] for k in grid] for s, grid in zip(seeds, keys, strict=True)}
    runs = [r for grid in seed_runs.values() for r in grid]
    if any(r is None for r in runs) or ph is None:
        return Result([r for r in runs if r is not None], None, "some runs could not be read", list(where))
    verdict, problem, per_seed = None, "", {}
    try:
        per_seed = {s: ph.verdict(r) for s, r in seed_runs.items()}
        verdict = combine_seeds(per_seed)
    except Exception as err:  # a verdict that cannot be computed is shown as such
        problem = f"the verdict could not be computed ({type(err).__name__}: {err})"
    return Result(runs, verdict, problem, list(where), per_seed, seed_runs)


def result_figures(ph, res: Result, normalised: bool, presentation: bool) -> tuple[list, str]:
    """The phenomenon's figures of a stored result, drawn from its first seed (cached: they take a second)."""
    seed = min(res.seed_runs) if res.seed_runs else 0
    runs = res.seed_runs.get(seed, res.runs)
    keys = tuple(r.spec.key() for r in runs)
    return _result_figures(ph.name, seed, keys, tuple(res.sources), normalised, presentation)


@st.cache_resource(show_spinner=False, max_entries=64)
def _result_figures(name: str, seed: int, keys: tuple, where: tuple, normalised: bool, presentation: bool):
    runs = [resources.load_run(k)[0] for k in keys]
    ph = safe_get(name)
    try:
        verdict = ph.verdict(runs)
    except Exception:
        verdict = None
    return figures(ph, runs, verdict, normalised, presentation)


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


def seed_table(per_seed: dict) -> pd.DataFrame:
    """One row per seed: its headline number, its verdict and which clauses held."""
    return pd.DataFrame([{"seed": s, "headline": v.measured, "verdict": _word(v.passed),
                          "clauses holding": f"{sum(bool(c.passed) for c in v.clauses)} of {len(v.clauses)}"}
                         for s, v in sorted(per_seed.items())])


def verdict_table(verdict: Verdict) -> pd.DataFrame:
    """Per run: its seed, measured number, its own criterion, pass/fail and the run's other numbers."""
    rows = []
    for r in verdict.per_run:
        row = {"run": f"{r.get('arch', '')} · {display_name(r.get('dataset', ''))}", "seed": r.get("seed", 0),
               "key": r.get("key", ""), "status": r.get("status", ""), "measured": r.get("measured"),
               "criterion": r.get("criterion", ""), "verdict": _word(r.get("passed"))}
        for k, v in r.items():
            if k not in row and k not in ("arch", "dataset", "passed") and isinstance(v, (int, float, str)):
                row[k] = v
        rows.append(row)
    return pd.DataFrame(rows)


def tried_table(ph) -> pd.DataFrame:
    """The set-ups that did not reproduce the claim, as the phenomenon's module records them."""
    return pd.DataFrame([{"set-up": t.setup, "outcome": t.outcome, "seeds": t.seeds} for t in ph.tried])


def _word(passed) -> str:
    return {True: "holds", False: "fails"}.get(passed, "n/a")


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"
