"""Running a phenomenon: its specs through the store (train what is missing), then its verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..store import RunStore
from ..train import Run, get_or_train
from . import get
from .base import Verdict


@dataclass
class PhenomenonResult:
    name: str
    size: str
    runs: list[Run]
    verdict: Verdict
    seconds: float

    def to_json_dict(self) -> dict:
        """The one object `verify --json` prints (DESIGN.md contract)."""
        v = self.verdict.to_dict()
        return {"phenomenon": self.name, "passed": v["passed"], "measured": v["measured"], "expected": v["expected"],
                "tolerance": v["tolerance"], "explanation": v["explanation"], "seconds": round(self.seconds, 3),
                "size": self.size, "details": v["details"],
                "runs": [{k: r.get(k) for k in ("key", "arch", "dataset", "passed", "measured")} for r in v["per_run"]]}


def tag(name: str, size: str) -> list[str]:
    """Store tags of a phenomenon's runs."""
    return [f"phenomenon:{name}", f"size:{size}"]


def run_phenomenon(name: str, size: str = "quick", archs=None, datasets=None, store: RunStore | None = None,
                   on_progress: Callable[[int, int, str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, device: str | None = None,
                   sources: list[RunStore] | None = None, specs: list | None = None) -> PhenomenonResult:
    """Train (or read) every run of a phenomenon and compute its verdict.

    `on_progress(done, total, key)` after each run; `sources` are read-only stores consulted first
    (the gallery). `device` overrides the specs' device (e.g. cuda for `full`). `specs`: the result of
    `specs(size, archs, datasets)` when the caller already has it (building them can cost a measurement).
    """
    ph = get(name)
    specs = ph.specs(size, archs, datasets) if specs is None else specs
    if device:
        specs = [s.replace(device=device) for s in specs]
    store = store or RunStore()
    started = time.perf_counter()
    runs: list[Run] = []
    for i, spec in enumerate(specs):
        run = next((src.get(spec.key()) for src in (sources or []) if src.has(spec.key())), None)
        if run is None:
            run = get_or_train(store, spec, should_stop=should_stop, tags=tag(name, size))
        runs.append(run)
        if on_progress:
            on_progress(i + 1, len(specs), spec.key())
        if should_stop and should_stop():
            break
    verdict = ph.verdict(runs)
    return PhenomenonResult(name, size, runs, verdict, time.perf_counter() - started)


def stored_result(name: str, size: str, stores: list[RunStore], archs=None, datasets=None) -> PhenomenonResult | None:
    """The result from stored runs alone, or None when any run is missing (nothing is trained)."""
    ph = get(name)
    specs = ph.specs(size, archs, datasets)
    runs = []
    for spec in specs:
        run = next((st.get(spec.key()) for st in stores if st.has(spec.key())), None)
        if run is None:
            return None
        runs.append(run)
    started = time.perf_counter()
    return PhenomenonResult(name, size, runs, ph.verdict(runs), time.perf_counter() - started)
