"""Gradient noise scale B_simple = tr(Sigma) / |G|^2 from per-example gradients (McCandlish et al. 2018).

Per-example gradients come from ``torch.func`` (``vmap`` over ``grad`` of ``functional_call``): example
``i`` is fed as a batch of one, ``loss_fn(model(x[i:i+1]), y[i:i+1])``. For a loss that averages over
the batch (``nn.MSELoss()``, ``nn.CrossEntropyLoss()``) their mean is the full-batch gradient G.
The model must treat examples independently: put batch-norm or dropout models in ``eval()`` first.
Gradients are with respect to the parameters that require grad, flattened in
``model.named_parameters()`` order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class NoiseScale:
    """Simple noise scale and its parts."""

    b_simple: float  # tr(Sigma) / |G|^2 (inf when the |G|^2 estimate is not positive)
    trace_sigma: float  # trace of the unbiased (1 / (n - 1)) per-example gradient covariance
    grad_sq_norm: float  # |G|^2: of the mean gradient, or its unbiased estimate |mean|^2 - tr(Sigma) / n
    n: int  # number of examples
    unbiased: bool  # whether grad_sq_norm is the unbiased estimate


def _check(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk_size: int | None) -> None:
    """Validate the common arguments."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError("inputs must be a tensor with a non-empty batch dimension")
    if not isinstance(targets, torch.Tensor) or targets.ndim < 1 or targets.shape[0] != inputs.shape[0]:
        got = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"targets must be a tensor with the batch size of inputs ({inputs.shape[0]}) (got {got})")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None (got {chunk_size!r})")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model must have parameters that require grad (got none)")


def _per_example_fn(model: nn.Module, loss_fn: LossFn) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Function (inputs, targets) -> flattened per-example gradients (batch, P)."""
    trainable = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    fixed = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
    fixed.update({k: v.detach() for k, v in model.named_buffers()})

    def example_loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {**fixed, **p}, (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    grads = vmap(grad(example_loss), in_dims=(None, 0, 0))

    def per_example(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = grads(trainable, x, y)
        return torch.cat([g[k].reshape(x.shape[0], -1) for k in trainable], dim=1).detach()

    return per_example


def _chunks(n: int, chunk_size: int | None) -> list[slice]:
    """Slices covering range(n) in chunks."""
    size = n if chunk_size is None else chunk_size
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def per_example_grads(
    model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor, chunk_size: int | None = None
) -> np.ndarray:
    """Per-example loss gradients as an (n, P) array in the model's dtype (chunks of `chunk_size` examples)."""
    _check(model, inputs, targets, chunk_size)
    fn = _per_example_fn(model, loss_fn)
    return torch.cat([fn(inputs[s], targets[s]) for s in _chunks(inputs.shape[0], chunk_size)]).cpu().numpy()


def noise_scale(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    unbiased: bool = False,
    chunk_size: int | None = None,
    population: int | None = None,
) -> NoiseScale:
    """Simple noise scale tr(Sigma) / |G|^2 over the batch, streaming over chunks of examples.

    Sigma is the sample covariance of the per-example gradients with the unbiased ``1 / (n - 1)``
    normalisation; G is their mean. ``|G|^2`` is ``|mean|^2``, which overestimates the true squared
    gradient norm by ``tr(Sigma) / n`` on average; with ``unbiased=True`` it is ``|mean|^2 - tr(Sigma) / n``
    instead. When the batch is drawn without replacement from a finite set of ``population`` examples
    (a training set), the overestimate is ``(1 - n / population) tr(Sigma) / n`` and that is subtracted
    (nothing when the batch is the whole set, whose mean gradient is exact). Chunks are merged with Chan et al.'s
    pairwise update (float64), so memory is one chunk.
    """
    _check(model, inputs, targets, chunk_size)
    n = inputs.shape[0]
    if population is not None and (not isinstance(population, int) or population < n):
        raise ValueError(f"population must be an integer at least the batch size {n} (got {population!r})")
    if n < 2:
        raise ValueError(f"inputs must hold at least 2 examples for a covariance (got {n})")
    fn = _per_example_fn(model, loss_fn)
    count, mean, sum_sq = 0, None, 0.0
    for s in _chunks(n, chunk_size):
        g = fn(inputs[s], targets[s]).double()
        k = g.shape[0]
        chunk_mean = g.mean(dim=0)
        chunk_sq = float(((g - chunk_mean) ** 2).sum())
        if mean is None:
            mean, sum_sq = chunk_mean, chunk_sq
        else:
            delta = chunk_mean - mean
            total = count + k
            mean = mean + delta * (k / total)
            sum_sq += chunk_sq + float((delta**2).sum()) * count * k / total
        count += k
    trace_sigma = sum_sq / (n - 1)
    grad_sq = float((mean**2).sum())
    if unbiased:
        grad_sq -= trace_sigma / n * (1.0 if population is None else 1.0 - n / population)
    b_simple = trace_sigma / grad_sq if grad_sq > 0 else float("inf")
    return NoiseScale(b_simple=b_simple, trace_sigma=trace_sigma, grad_sq_norm=grad_sq, n=n, unbiased=bool(unbiased))
