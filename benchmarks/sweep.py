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

Run: python -m benchmarks.sweep [--steps-small 500] [--steps-compute 40] [--only small,sharp,compute] [--threads N]
(--threads sets torch's threads in this process, for serial and vmap; pool workers always get cores // workers.)

Output on the 2-core CPU machine (torch 2.13.0):

Measured on a shared machine: 2 cores, torch 2.13.0 CPU, while other jobs kept the load average at
7-14, so each process got only a share of the cores and torch's 2 intra-op threads suffered most
(idle-machine ratios will differ; the serial small case was too slow to run at 500 steps with 2
threads under that load). "max diff" in runs 1 and 2 is the relative difference of final losses
(the first version of the benchmark); run 2's 0.0246 is the edge-of-stability chaos at lr 0.32
after ~250 steps (serial runs with 1 and 2 threads differ by 0.019 there too); run 3 and the
current benchmark compare the first 200 steps of every loss history.

1) default torch threads (2), small cases shortened to 100 steps (`--steps-small 100 --steps-compute 10`):

torch 2.13.0+cpu, 2 threads, cores 2, load average 13.9
                     case  runs     work auto plan  serial_s  process_s  vmap_s  auto_s  process/serial  vmap/serial  auto/serial  max diff statuses
        small (100 steps)    16 4.59e+06      vmap       459         70    89.4    40.5           0.153        0.195       0.0883  1.55e-07       ok
small+sharp25 (100 steps)    16 4.59e+06      vmap       299       68.1    70.4    54.9           0.227        0.235        0.183  1.55e-07       ok
       compute (10 steps)    16 3.09e+08   process       174       66.4    51.6      60           0.382        0.297        0.345   2.1e-07       ok
load average after: 12.5

2) `--threads 1` (serial and vmap on one thread in this process; pool workers run cores // workers):

torch 2.13.0+cpu, 1 threads, cores 2, load average 11.5
                     case  runs     work auto plan  serial_s  process_s  vmap_s  auto_s  process/serial  vmap/serial  auto/serial  max diff statuses
        small (500 steps)    16 4.59e+06      vmap      71.7        104    26.7    29.6            1.45        0.373        0.413    0.0246       ok
small+sharp25 (500 steps)    16 4.59e+06      vmap      81.9        125    45.6    46.3            1.52        0.557        0.565    0.0246       ok
       compute (40 steps)    16 3.09e+08   process      77.3        104     105     110            1.34         1.36         1.42   1.4e-07       ok
load average after: 10.8

3) default torch threads (2), the compute case at 40 steps (`--only compute`):

torch 2.13.0+cpu, 2 threads, cores 2, load average 7.6
              case  runs     work auto plan  serial_s  process_s  vmap_s  auto_s  process/serial  vmap/serial  auto/serial  max diff statuses
compute (40 steps)    16 3.09e+08   process       357        132     172    98.6           0.371        0.481        0.276  3.06e-07       ok
load average after: 8.8
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from learnmech_core.sweep import SweepSpec, estimated_work, plan, run_sweep

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
    for ra, rb in zip(runs_a, runs_b, strict=True):
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
