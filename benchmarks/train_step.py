"""Our training loop vs a plain hand-written PyTorch loop doing the same work (MLP on digits).

Both train the same model from the same initial weights with full-batch GD and read the loss every
step; ours also builds its history rows and, for classification, the training accuracy. Probes off
(`ProbeSpec(norms=False)`, no evaluation). Contenders alternate; medians of per-step time over
repeats. Target: our overhead at most 10%.

    python -m benchmarks.train_step [--steps 300] [--repeats 5] [--width 128] [--threads 2]

Measured 2026-11-29 (2 cores, other jobs running, load 2.6-2.8):
    --threads 1: n=512  ours 2.56 ms  plain 2.33 ms  ours/plain 1.100
                 n=1536 ours 6.47 ms  plain 6.69 ms  ours/plain 0.967
    --threads 2: n=512  ours/plain 0.514 (25.7 vs 50.1 ms: OpenMP spin-waiting under load, noise)
                 n=1536 ours 5.47 ms  plain 5.70 ms  ours/plain 0.960
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, train
from learnmech_core.data import load
from learnmech_core.train import build_model, loss_function, make_optimizer


def plain_loop(spec: RunSpec, data) -> float:
    """Hand-written loop: forward, loss, backward, step, loss.item(); returns seconds per step."""
    model, _ = build_model(spec, data)
    opt = make_optimizer(spec, model)
    loss_fn = loss_function(spec.optim.loss)
    x, y = data.x_train, data.targets(data.y_train, spec.optim.loss)
    losses = []
    start = time.perf_counter()
    for _ in range(spec.optim.steps):
        loss = loss_fn(model(x), y)
        losses.append(loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / spec.optim.steps


def our_loop(spec: RunSpec, data) -> float:
    run = train(spec, data=data)
    assert run.status == "ok", run.message
    return run.history["time_s"].iloc[-1] / spec.optim.steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 is steadier on a busy machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for n_train in (512, 1536):
        spec = RunSpec(model=ModelSpec(width=args.width, depth=2),
                       data=DataSpec(name="digits", n_train=n_train, n_test=0),
                       optim=OptimSpec(name="gd", lr=0.05, steps=args.steps, eval_every=0),
                       probes=ProbeSpec(norms=False, save_weights=False))
        data = load(spec.data)
        ours, plain = [], []
        for _ in range(args.repeats):
            plain.append(plain_loop(spec, data))
            ours.append(our_loop(spec, data))
        o, p = statistics.median(ours), statistics.median(plain)
        print(f"MLP 64-{args.width}-{args.width}-10, digits n={n_train}, GD, {args.steps} steps x {args.repeats}: "
              f"ours {1 / o:8.1f} steps/s ({o * 1e3:.2f} ms)  plain {1 / p:8.1f} steps/s ({p * 1e3:.2f} ms)  "
              f"ours/plain = {o / p:.3f}")


if __name__ == "__main__":
    main()
