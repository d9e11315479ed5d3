"""How much memory a run needs, estimated before it starts (so a hosted server can refuse it up front).

The estimate is the resident memory of a training process: a base (the Python interpreter with torch
and the training code imported, `BASE_MB`) plus the run's own arrays:

- data: the generated or read inputs (float64 while generated, float32 as tensors, twice for the
  standardised copy) and targets;
- parameters: weights, gradients, the initial copy, up to two optimiser state tensors, and the
  curvature probes' Krylov vectors (float64, `LANCZOS_VECTORS` of them) when sharpness is recorded;
- activations: every layer's output for the largest batch the run pushes through the model (the
  training batch, or the probe batch of the curvature probes), kept for the backward pass, and kept
  again by the double backward of a Hessian-vector product.

Per-example activation sizes come from one forward pass on the meta device (no memory, no compute).
The base and the safety factor are calibrated on the measured peak resident memory (VmHWM) of forked
workers, hosted profile, torch 2.13 CPU (estimate >= measured in every case):

    run (steps cut short)                        estimate   measured
    mlp 128x2 digits 512, sharpness (default)      422 MB     386 MB
    mlp 256x4 digits 1,500, sharpness              583        497
    mlp 1024x1 gaussian_mixture 5,000 (64-D)       719        699
    cnn 64x3 digits 1,500, sharpness               906        784
    cnn 32x2 digits, sgd batch 128, probe 512      477        443
    transformer 64x2 modular 1,000, adamw          611        423
    resnet 64x2 digits 1,500, sharpness           2017       1461

tests/test_pool.py checks the bound again on two small runs.
"""

from __future__ import annotations

import functools
import math

import torch

from . import models
from .config import RunSpec
from .data import describe

BASE_MB = 400.0  # a forked worker that has trained a tiny run (measured 255 MB resident at start, 386 after)
SAFETY = 2.2  # measured peak / the arrays counted here: 1.3-2.1 (allocator slack, autograd buffers, BLAS)
LANCZOS_VECTORS = 24
BYTES = 4


@functools.lru_cache(maxsize=1024)
def activation_elements(spec_json: str) -> int:
    """Elements of all module outputs for one example (a forward pass on the meta device)."""
    spec = RunSpec.from_json(spec_json)
    info = describe(spec.data)
    total = 0

    def count(_module, _inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output[0].numel() if output.dim() else 1

    with torch.device("meta"):
        model = models.build(spec.model, info, spec.optim.name, device="meta")
        hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
        if info.kind == "tokens":
            x = torch.zeros((1, *info.input_shape), dtype=torch.long)
        else:
            x = torch.zeros((1, *info.input_shape))
        try:
            model(x)
        finally:
            for h in hooks:
                h.remove()
    return total


def estimate_mb(spec: RunSpec) -> float:
    """Estimated peak resident memory, in MB, of a process training this spec (see the module docstring)."""
    info = describe(spec.data)
    p = spec.probes
    n = spec.data.n_train + spec.data.n_test
    features = math.prod(info.input_shape)
    data_bytes = n * features * (8 + 2 * BYTES) + n * max(info.n_outputs, 1) * 8
    params = models.param_count(spec.model, info)
    curvature = bool(p.sharpness_every or p.topk_every or p.density_every or p.precond_sharpness_every)
    copies = 5 + (2 if spec.optim.name in ("adam", "adamw", "momentum") else 0)
    param_bytes = params * BYTES * copies + (params * 8 * LANCZOS_VECTORS if curvature else 0)
    batch = spec.data.n_train if spec.optim.batch_size == 0 else min(spec.optim.batch_size, spec.data.n_train)
    probe_batch = min(p.probe_batch or spec.data.n_train, spec.data.n_train) if curvature else 0
    per_example = activation_elements(spec.to_json()) * BYTES
    act_bytes = max(3 * batch, 6 * probe_batch, 2 * spec.data.n_test) * per_example
    dtype_factor = 2.0 if spec.dtype == "float64" else 1.0
    return BASE_MB + SAFETY * dtype_factor * (data_bytes + param_bytes + act_bytes) / 2**20


def refusal(spec: RunSpec, cap_mb: float, profile: str) -> str:
    """'' when the run fits the memory cap, else the message that refuses it (naming the cap)."""
    need = estimate_mb(spec)
    if need <= cap_mb:
        return ""
    return (f"not trained: this run would need about {need:,.0f} MB, more than the {profile} profile's cap of "
            f"{cap_mb:,.0f} MB per run. Use fewer training examples, a smaller width, or a minibatch size.")
