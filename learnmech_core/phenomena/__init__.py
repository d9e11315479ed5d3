"""Phenomena catalogue: each universal behaviour as a falsifiable prediction with a verdict.

`get(name)` returns the registered phenomenon; `names()` lists them in catalogue order. Modules are
listed in `_MODULES`; each defines one `Phenomenon` subclass instance called `PHENOMENON`.
"""

from __future__ import annotations

import importlib

from .base import DIRECTIONS, SIZES, Phenomenon, Verdict, run_row

_MODULES = (
    "edge_of_stability", "adaptive_edge_of_stability", "progressive_sharpening", "catapult",
    "saxe_dynamics", "eigenlearning", "lazy_vs_rich", "mup_transfer", "critical_batch_size",
    "scaling_collapse", "neural_collapse", "conservation_laws", "grokking", "heavy_tailed_spectra",
    "hessian_outliers", "representation_convergence",
)


def _load(name: str) -> Phenomenon | None:
    try:
        module = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name == f"{__name__}.{name}":
            return None  # not written yet
        raise
    return module.PHENOMENON


def names() -> list[str]:
    """Registered phenomenon names, in catalogue order."""
    return [n for n in _MODULES if _load(n) is not None]


def get(name: str) -> Phenomenon:
    """The phenomenon registered under a name; unknown names list the valid ones."""
    ph = _load(name) if name in _MODULES else None
    if ph is None:
        raise ValueError(f"unknown phenomenon {name!r}; choose one of {', '.join(names())}")
    return ph


def all_phenomena() -> list[Phenomenon]:
    return [get(n) for n in names()]


__all__ = ["DIRECTIONS", "SIZES", "Phenomenon", "Verdict", "run_row", "get", "names", "all_phenomena"]
