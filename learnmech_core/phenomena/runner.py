"""Running a phenomenon: its specs through the store (train what is missing), then its verdict, per seed.

Each seed is an independent replicate of the whole grid (`Phenomenon.specs(..., seed=s)`); the verdict
of each seed is computed from that seed's runs alone, and `combine_seeds` joins them: the prediction holds
when the whole claim (every clause) holds on at least 2 of 3 seeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import phenomena as registry  # looked up at call time (tests swap the registry)
from ..records import Run
from ..store import RunStore
from ..train import get_or_train
from .base import Verdict, combine_seeds


@dataclass
class PhenomenonResult:
    name: str
    size: str
    runs: list[Run]  # every seed's runs, seed by seed
    verdict: Verdict  # combined over seeds
    seconds: float
    per_seed: dict[int, Verdict] = field(default_factory=dict)
    seed_runs: dict[int, list[Run]] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return sorted(self.per_seed)

    @property
    def pass_fraction(self) -> float:
        return sum(v.passed for v in self.per_seed.values()) / len(self.per_seed) if self.per_seed else float("nan")

    def to_json_dict(self) -> dict:
        """The one object `verify --json` prints (DESIGN.md contract)."""
        ph = registry.get(self.name)
        v = self.verdict.to_dict()
        return {"phenomenon": self.name, "passed": v["passed"], "measured": v["measured"], "expected": v["expected"],
                "tolerance": v["tolerance"], "criterion": v["criterion"], "summary": self.verdict.summary(),
                "explanation": v["explanation"],
                "seconds": round(self.seconds, 3), "size": self.size, "details": v["details"],
                "runs": [{k: r.get(k) for k in ("key", "arch", "dataset", "seed", "passed", "measured", "criterion")}
                         for r in v["per_run"]],
                "clauses": v["clauses"],
                "source": ph.source.to_dict() if ph.source else {"citation": "; ".join(ph.sources), "quote": ""},
                "seeds": [{"seed": s, "passed": bool(sv.passed), "measured": sv.to_dict()["measured"],
                           "clauses": [c.passed for c in sv.clauses],
                           "keys": [r.spec.key() for r in self.seed_runs.get(s, [])]}
                          for s, sv in sorted(self.per_seed.items())],
                "pass_fraction": self.pass_fraction}


def tag(name: str, size: str) -> list[str]:
    """Store tags of a phenomenon's runs."""
    return [f"phenomenon:{name}", f"size:{size}"]


def all_specs(name: str, size: str, archs=None, datasets=None, seeds=(0,)) -> dict[int, list]:
    """seed -> that replicate's specs."""
    ph = registry.get(name)
    return {int(s): ph.specs(size, archs, datasets, seed=int(s)) for s in seeds}


def run_phenomenon(name: str, size: str = "quick", archs=None, datasets=None, store: RunStore | None = None,
                   on_progress: Callable[[int, int, str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, device: str | None = None,
                   sources: list[RunStore] | None = None, specs: dict[int, list] | list | None = None,
                   seeds=(0,)) -> PhenomenonResult:
    """Train (or read) every run of a phenomenon for each seed and compute the verdicts.

    `on_progress(done, total, key)` after each run; `sources` are read-only stores consulted first
    (the gallery). `device` overrides the specs' device (e.g. cuda for `full`). `specs`: seed -> specs
    (or seed 0's list) when the caller already has them (building them can cost a measurement).
    """
    ph = registry.get(name)
    if specs is None:
        specs = all_specs(name, size, archs, datasets, seeds)
    elif not isinstance(specs, dict):
        specs = {int(seeds[0]) if seeds else 0: list(specs)}
    if device:
        specs = {s: [x.replace(device=device) for x in sp] for s, sp in specs.items()}
    store = store or RunStore()
    started = time.perf_counter()
    total = sum(len(sp) for sp in specs.values())
    done = 0
    seed_runs: dict[int, list[Run]] = {}
    for seed, grid in specs.items():
        runs = seed_runs.setdefault(seed, [])
        for spec in grid:
            run = next((src.get(spec.key()) for src in (sources or []) if src.has(spec.key())), None)
            if run is None:
                run = get_or_train(store, spec, should_stop=should_stop, tags=tag(name, size))
            runs.append(run)
            done += 1
            if on_progress:
                on_progress(done, total, spec.key())
            if should_stop and should_stop():
                break
        if should_stop and should_stop():
            break
    per_seed = {s: ph.verdict(r) for s, r in seed_runs.items()}
    return PhenomenonResult(name, size, [r for s in seed_runs for r in seed_runs[s]], combine_seeds(per_seed),
                            time.perf_counter() - started, per_seed, seed_runs)


def stored_result(name: str, size: str, stores: list[RunStore], archs=None, datasets=None,
                  seeds=(0,)) -> PhenomenonResult | None:
    """The result from stored runs alone, or None when any run is missing (nothing is trained)."""
    ph = registry.get(name)
    seed_runs: dict[int, list[Run]] = {}
    for seed, grid in all_specs(name, size, archs, datasets, seeds).items():
        runs = seed_runs.setdefault(seed, [])
        for spec in grid:
            run = next((st.get(spec.key()) for st in stores if st.has(spec.key())), None)
            if run is None:
                return None
            runs.append(run)
    started = time.perf_counter()
    per_seed = {s: ph.verdict(r) for s, r in seed_runs.items()}
    return PhenomenonResult(name, size, [r for s in seed_runs for r in seed_runs[s]], combine_seeds(per_seed),
                            time.perf_counter() - started, per_seed, seed_runs)
