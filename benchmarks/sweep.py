"""Sweep backends side by side: a 16-member learning-rate sweep as serial runs, a process pool, a vmap
ensemble, and whatever `auto` picks, in one process, with the ratios to serial.

Cases:
  small        digits MLP 64-64-64-10 (tanh, MSE; 8,970 parameters), 512 examples, 500 full-batch GD
               steps: overhead-bound (target: vmap at most 1/4 of serial on 2 cores)
  small+sharp  the same with sharpness every 25 steps (batched HVPs per member in the ensemble)
  compute      gaussian_mixture (64-D, 10 classes), MLP 64-256-256-256-10 (150,794 parameters),
               2,048 examples, full batch: compute-bound (ensembles gain little on a CPU; auto must
               pick the faster backend and never be slower than serial)

Nothing is read from or written to the run store (store=False); every backend trains the same specs
and the loss histories of the first 200 steps are compared ("max diff", relative; ~1e-7). Timings are wall
seconds of one `run_sweep` call each, so the process pool includes starting its workers.

Run: python benchmarks/sweep.py [--steps-small 500] [--steps-compute 40] [--only small,sharp,compute] [--threads N]
(--threads sets torch's threads in this process, for serial and vmap; pool workers always get cores // workers.)

Output on the 2-core CPU machine (torch 2.13.0):

<paste>
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec  # noqa: E402
from learnmech_core.sweep import SweepSpec, estimated_work, plan, run_sweep  # noqa: E402

LRS = [round(float(x), 4) for x in np.linspace(0.02, 0.32, 16)]


def small(sharpness_every: int = 0, steps: int = 500) -> SweepSpec:
    """16 learning rates, digits MLP width 64, 512 examples, 500 full-batch steps."""
    base = RunSpec(model=ModelSpec(arch="mlp", width=64, depth=2, activation="tanh"),
                   data=DataSpec(name="digits", n_train=512, n_test=256),
                   optim=OptimSpec(name="gd", lr=0.1, steps=steps, loss="mse", eval_every=50),
                   probes=ProbeSpec(sharpness_every=sharpness_every))
    return SweepSpec(base, {"optim.lr": LRS})


def compute(steps: int) -> SweepSpec:
    """16 learning rates, MLP 64-256-256-256-10 (150,794 parameters), 2,048 examples, full batch."""
    base = RunSpec(model=ModelSpec(arch="mlp", width=256, depth=3, activation="tanh"),
                   data=DataSpec(name="gaussian_mixture", dim=64, n_classes=10, n_train=2048, n_test=256),
                   optim=OptimSpec(name="gd", lr=0.1, steps=steps, loss="ce", eval_every=50))
    return SweepSpec(base, {"optim.lr": [lr / 4 for lr in LRS]})


def timed(sweep: SweepSpec, backend: str):
    """(seconds, runs) of one run_sweep call without a store."""
    start = time.perf_counter()
    runs = run_sweep(sweep, backend=backend, store=False)
    return time.perf_counter() - start, runs


def max_rel_diff(runs_a, runs_b, upto: int = 200) -> float:
    """Largest relative difference of the loss histories (first `upto` steps) between two backends' runs.

    Later steps are left out because the largest learning rates sit at the edge of stability, where
    the dynamics are chaotic and amplify float rounding (1e-7) to percent level after ~250 steps --
    serial runs with 1 and 2 torch threads differ just as much there.
    """
    worst = 0.0
    for ra, rb in zip(runs_a, runs_b):
        a = ra.history["loss"].to_numpy()[:upto]
        b = rb.history["loss"].to_numpy()[:upto]
        n = min(len(a), len(b))
        worst = max(worst, float(np.nanmax(np.abs(a[:n] - b[:n]) / np.maximum(np.abs(b[:n]), 1e-12))))
    return worst


def bench(name: str, sweep: SweepSpec, backends=("serial", "process", "vmap", "auto")) -> dict:
    """Times of each backend on one sweep, ratios to serial, and what auto planned."""
    chosen = "+".join(sorted({kind for kind, _ in plan(sweep.specs(), "auto")}))
    row = {"case": name, "runs": len(sweep), "work": estimated_work(sweep.specs()[0]), "auto plan": chosen}
    results = {}
    for backend in backends:
        seconds, runs = timed(sweep, backend)
        results[backend] = runs
        row[f"{backend}_s"] = seconds
        print(f"  {name}: {backend} {seconds:.2f} s", file=sys.stderr, flush=True)
    for backend in backends[1:]:
        row[f"{backend}/serial"] = row[f"{backend}_s"] / row["serial_s"]
    row["max diff"] = max(max_rel_diff(results[b], results["serial"]) for b in backends[1:])
    statuses = {r.status for runs in results.values() for r in runs}
    row["statuses"] = ",".join(sorted(statuses))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-small", type=int, default=500, help="steps of the small cases")
    parser.add_argument("--steps-compute", type=int, default=40, help="steps of the compute-bound case")
    parser.add_argument("--only", default="small,sharp,compute", help="comma list of cases to run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in this process (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = args.only.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cores {len(os.sched_getaffinity(0))}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    if "small" in cases:
        rows.append(bench(f"small ({args.steps_small} steps)", small(steps=args.steps_small)))
    if "sharp" in cases:
        rows.append(bench(f"small+sharp25 ({args.steps_small} steps)", small(25, args.steps_small)))
    if "compute" in cases:
        rows.append(bench(f"compute ({args.steps_compute} steps)", compute(args.steps_compute)))
    import pandas as pd

    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3g}".format):
        print(table.to_string(index=False))
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
