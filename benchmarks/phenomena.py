"""Time of each phenomenon at `quick` size on this machine (target: at most 60 s each on 2 cores).

Every phenomenon is run from an empty scratch store (nothing cached), one after another, and its
wall time, run count and verdict are printed.

    python -m benchmarks.phenomena [--only edge_of_stability,grokking] [--size quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from learnmech_core import phenomena
from learnmech_core.phenomena.runner import run_phenomenon
from learnmech_core.store import RunStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only")
    ap.add_argument("--size", default="quick")
    args = ap.parse_args()
    torch.set_num_threads(2)
    names = args.only.split(",") if args.only else phenomena.names()
    print(f"{'phenomenon':28s} {'runs':>4s} {'seconds':>8s}  verdict")
    for name in names:
        with tempfile.TemporaryDirectory() as root:
            start = time.perf_counter()
            result = run_phenomenon(name, args.size, store=RunStore(root))
            seconds = time.perf_counter() - start
        flag = "" if seconds <= 60 else "  (over 60 s)"
        print(f"{name:28s} {len(result.runs):4d} {seconds:8.1f}  {result.verdict.summary()}{flag}", flush=True)


if __name__ == "__main__":
    main()
