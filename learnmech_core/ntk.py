"""Empirical neural tangent kernel Theta = J D J^T of a model on a batch, its spectrum and kernel distance.

The Jacobian J is of the model's outputs with respect to its parameters, one example at a time
(``torch.func.vmap`` over ``jacrev`` of ``functional_call``), so the model must treat examples
independently: put models with batch norm or dropout in ``eval()`` mode first.
Outputs of shape ``(batch, ...)`` are flattened to ``(batch, o)``; a 1-D output has ``o = 1``.

D is the diagonal of per-parameter learning-rate multipliers, so Theta is the kernel that drives
gradient descent: with per-layer rates eta * D, the outputs move by df = -eta J D J^T dL/df. By
default D comes from the model itself (`model_lr_multipliers`: the ``lr_mult`` of learnmech's
parametrised layers, muP's per-layer rates away from its base width; 1 for every other parameter),
so for SP, NTK and any plain ``nn.Module`` Theta = J J^T. Pass ``lr_mults={}`` for J J^T always.
The multipliers a learnmech model carries are those of its optimiser family (SGD-like or Adam-like);
only under SGD-like optimisers is J D J^T the kernel of the training dynamics.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

# Default memory budget for Jacobian blocks held at once (bytes).
DEFAULT_MAX_BYTES = 1 << 30


def _differentiated(model: nn.Module, params: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Parameters to differentiate: `params` (a subset of the model's names) or all that require grad."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    named = dict(model.named_parameters())
    if params is None:
        chosen = {k: v.detach() for k, v in named.items() if v.requires_grad}
    else:
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a mapping of parameter names to tensors (got {type(params).__name__})")
        unknown = sorted(set(params) - set(named))
        if unknown:
            raise ValueError(f"params has names the model lacks: {unknown} (allowed: {sorted(named)})")
        chosen = {}
        for k, v in params.items():
            if not isinstance(v, torch.Tensor) or v.shape != named[k].shape:
                raise ValueError(f"params[{k!r}] must be a tensor of shape {tuple(named[k].shape)}")
            chosen[k] = v.detach()
    if not chosen:
        raise ValueError("params must name at least one parameter (the model has none requiring grad)")
    return chosen


def model_lr_multipliers(model: nn.Module) -> dict[str, float]:
    """Per-parameter learning-rate multipliers the model carries: each module's ``lr_mult`` (none: absent)."""
    out = {}
    for module_name, module in model.named_modules():
        mult = getattr(module, "lr_mult", None)
        if mult is None:
            continue
        for name, _ in module.named_parameters(recurse=False):
            out[f"{module_name}.{name}" if module_name else name] = float(mult)
    return out


def _scales(lr_mults: Mapping[str, float], diff: dict[str, torch.Tensor]) -> dict[str, float]:
    """sqrt of each differentiated parameter's multiplier (1 where lr_mults has none), checked."""
    if not isinstance(lr_mults, Mapping):
        raise ValueError("lr_mults must be a mapping of parameter names to multipliers "
                         f"(got {type(lr_mults).__name__})")
    out = {}
    for name in diff:
        mult = lr_mults.get(name, 1.0)
        if not isinstance(mult, (int, float)) or not mult > 0 or not np.isfinite(mult):
            raise ValueError(f"lr_mults[{name!r}] must be a finite positive number (got {mult!r})")
        out[name] = float(mult) ** 0.5
    return out


def _jacobian_fn(model: nn.Module, diff: dict[str, torch.Tensor], scales: dict[str, float]):
    """Function inputs -> per-example Jacobian J D^{1/2} (batch, o, P) with respect to `diff`, in model dtype."""
    fixed = {k: v.detach() for k, v in model.named_parameters() if k not in diff}
    fixed.update({k: v.detach() for k, v in model.named_buffers()})

    def single(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**fixed, **p}, (x.unsqueeze(0),)).reshape(-1)

    per_example = vmap(jacrev(single), in_dims=(None, 0))

    def jacobian(x: torch.Tensor) -> torch.Tensor:
        blocks = per_example(diff, x)
        return torch.cat([blocks[k].reshape(x.shape[0], blocks[k].shape[1], -1) * scales[k] for k in diff], dim=2)

    return jacobian


def empirical_ntk(
    model: nn.Module,
    inputs: torch.Tensor,
    params: Mapping[str, torch.Tensor] | None = None,
    per_output: bool = False,
    chunk_size: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    lr_mults: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Empirical NTK: (n, n) trace over outputs sum_k J_k D J_k^T, or (n*o, n*o) per output (index i*o + k).

    ``lr_mults`` (name -> multiplier) sets D; None takes the model's own (`model_lr_multipliers`, see
    the module docstring), ``{}`` gives the unweighted J J^T.
    ``params`` (name -> tensor, a subset of the model's parameters) chooses the parameters to
    differentiate and the point at which to do so; the default is every parameter requiring
    grad, at its current value. Jacobians are computed in blocks of examples; when all of them
    do not fit in ``max_bytes`` they are recomputed per block pair (slower, bounded memory).
    Contractions run in float64.
    """
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must be a tensor with a non-empty batch dimension (got {inputs!r:.60})")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None (got {chunk_size!r})")
    diff = _differentiated(model, params)
    jacobian = _jacobian_fn(model, diff, _scales(model_lr_multipliers(model) if lr_mults is None else lr_mults, diff))
    n = inputs.shape[0]
    n_out = jacobian(inputs[:1]).shape[1]
    n_params = sum(v.numel() for v in diff.values())
    row_bytes = n_out * n_params * next(iter(diff.values())).element_size()
    fits = n * row_bytes <= max_bytes
    if chunk_size is None:
        chunk_size = n if fits else max(1, int(max_bytes // (2 * row_bytes)))
    blocks = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    cache: dict[int, torch.Tensor] = {}

    def block(b: int) -> torch.Tensor:
        if b in cache:
            return cache[b]
        lo, hi = blocks[b]
        jac = jacobian(inputs[lo:hi]).detach()
        if fits:
            cache[b] = jac
        return jac

    size = n * n_out if per_output else n
    kernel = np.zeros((size, size))
    for a, (alo, ahi) in enumerate(blocks):
        ja = block(a).double()
        for b in range(a, len(blocks)):
            blo, bhi = blocks[b]
            jb = ja if b == a else block(b).double()
            if per_output:
                k = torch.einsum("iop,jqp->iojq", ja, jb).reshape((ahi - alo) * n_out, (bhi - blo) * n_out)
                rows, cols = slice(alo * n_out, ahi * n_out), slice(blo * n_out, bhi * n_out)
            else:
                k = torch.einsum("iop,jop->ij", ja, jb)
                rows, cols = slice(alo, ahi), slice(blo, bhi)
            kernel[rows, cols] = k.cpu().numpy()
            kernel[cols, rows] = k.cpu().numpy().T
    return kernel


def _as_kernel(kernel: object, name: str) -> np.ndarray:
    """A square 2-D finite float64 array, raising ValueError naming `name` otherwise."""
    if isinstance(kernel, torch.Tensor):
        kernel = kernel.detach().to("cpu", torch.float64).numpy()
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.size == 0:
        raise ValueError(f"{name} must be a non-empty square 2-D matrix (got shape {k.shape})")
    if not np.all(np.isfinite(k)):
        raise ValueError(f"{name} must be finite (got NaN or inf)")
    return k


def ntk_eigenvalues(kernel: np.ndarray | torch.Tensor) -> np.ndarray:
    """Eigenvalues of the (symmetrised) kernel matrix, largest first, float64."""
    k = _as_kernel(kernel, "kernel")
    return np.linalg.eigvalsh(0.5 * (k + k.T))[::-1].copy()


def kernel_distance(kernel_a: np.ndarray | torch.Tensor, kernel_b: np.ndarray | torch.Tensor) -> float:
    """Kernel distance 1 - <K0, K1>_F / (||K0||_F ||K1||_F) (Fort et al. 2020)."""
    a, b = _as_kernel(kernel_a, "kernel_a"), _as_kernel(kernel_b, "kernel_b")
    if a.shape != b.shape:
        raise ValueError(f"kernel_b must have the shape of kernel_a {a.shape} (got {b.shape})")
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if norm_a == 0 or norm_b == 0:
        raise ValueError("kernel_a and kernel_b must be non-zero (got a zero matrix)")
    return float(1.0 - np.sum(a * b) / (norm_a * norm_b))
