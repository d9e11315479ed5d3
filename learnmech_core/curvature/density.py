"""Hessian spectral density by stochastic Lanczos quadrature (SLQ), and Hutchinson's trace estimate."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .checks import check_count, check_positive, make_generator
from .krylov import KrylovBasis, basis_device, random_vector, small_eigh
from .operators import hvp_operator
from .params import LossFn, ParamSelection


def _lanczos_quadrature(operator: Callable[[torch.Tensor], torch.Tensor], q0: torch.Tensor,
                        n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes and weights of the spectral measure of operator seen from unit vector q0."""
    n = int(operator.n)
    krylov = KrylovBasis(n, min(n_iter, n), q0.device)
    krylov.propose(q0)
    while krylov.pending is not None:  # plain Lanczos: the residual of the last image is the next direction
        w = operator(krylov.pending.to(device=operator.device, dtype=operator.dtype))
        w = w.detach().to(device=q0.device, dtype=torch.float64)
        if not bool(torch.isfinite(w).all()):
            raise FloatingPointError("a Hessian-vector product is not finite")
        krylov.expand(w)
        if krylov.C.size:  # False at a breakdown (an invariant subspace) or when n_iter vectors are reached
            krylov.propose_residual(krylov.C[:, -1])
    theta, Y = small_eigh(krylov.T)
    return theta, Y[0] ** 2


def slq_nodes(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object, n_probes: int = 8,
              n_iter: int = 64, generator: torch.Generator | None = None, params: ParamSelection = None,
              precond: torch.Tensor | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stochastic Lanczos quadrature: one (nodes, weights) pair per Rademacher probe.

    For each probe v (normalised), ``sum(weights * f(nodes))`` is the n_iter-point
    Gauss quadrature of v^T f(H) v, exact for polynomials of degree < 2 * n_iter, so
    ``mean over probes of sum(weights * nodes**m)`` estimates trace(H^m) / n
    (Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019). Weights sum to 1.
    """
    check_count("n_probes", n_probes)
    check_count("n_iter", n_iter)
    gen = make_generator(generator)
    op = hvp_operator(model, loss_fn, inputs, targets, params=params, precond=precond)
    bdev = basis_device(op.device)
    out = []
    for _ in range(n_probes):
        v = random_vector(op.n, gen, bdev, rademacher=True)
        out.append(_lanczos_quadrature(op, v / v.norm(), n_iter))
    return out


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid-rule integral of y over x."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2)


def density_from_nodes(nodes_weights: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray | None = None,
                       sigma: float | None = None, n_grid: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-smoothed spectral density from SLQ nodes and weights, normalised to integrate to 1 over grid.

    Defaults: sigma = (max node - min node) / 200 (or 1e-3 * max|node| if all nodes
    coincide); grid = n_grid points from min node - 5 sigma to max node + 5 sigma.
    """
    if not nodes_weights:
        raise ValueError("nodes_weights must hold at least one (nodes, weights) pair")
    nodes = np.concatenate([np.asarray(nw[0], dtype=np.float64) for nw in nodes_weights])
    weights = np.concatenate([np.asarray(nw[1], dtype=np.float64) for nw in nodes_weights]) / len(nodes_weights)
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        spread = hi - lo
        sigma = spread / 200 if spread > 0 else max(1e-3 * max(abs(lo), abs(hi)), 1e-12)
    check_positive("sigma", sigma)
    if grid is None:
        check_count("n_grid", n_grid, minimum=2)
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2 or not np.all(np.diff(grid) > 0):
        raise ValueError("grid must be a 1-D increasing array of at least 2 points")
    density = np.zeros_like(grid)
    for start in range(0, nodes.size, 256):  # bounded memory: grid x 256 at a time
        z = (grid[:, None] - nodes[None, start:start + 256]) / sigma
        density += np.exp(-0.5 * z * z) @ weights[start:start + 256]
    density /= sigma * math.sqrt(2 * math.pi)
    mass = _trapezoid(density, grid)
    if mass > 0:
        density /= mass
    return grid, density


def spectral_density(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object, n_probes: int = 8,
                     n_iter: int = 64, grid: np.ndarray | None = None, sigma: float | None = None,
                     generator: torch.Generator | None = None, params: ParamSelection = None,
                     precond: torch.Tensor | None = None, n_grid: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Hessian eigenvalue density on a grid by stochastic Lanczos quadrature with Gaussian smoothing.

    Costs n_probes * min(n_iter, n) HVPs. See :func:`slq_nodes` and
    :func:`density_from_nodes` (defaults for grid and sigma); the density integrates
    to 1 over the grid (trapezoid rule).
    """
    pairs = slq_nodes(model, loss_fn, inputs, targets, n_probes=n_probes, n_iter=n_iter,
                      generator=generator, params=params, precond=precond)
    return density_from_nodes(pairs, grid=grid, sigma=sigma, n_grid=n_grid)


def hessian_trace(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object, n_probes: int = 64,
                  generator: torch.Generator | None = None, params: ParamSelection = None,
                  return_stderr: bool = False) -> float | tuple[float, float]:
    """Hutchinson estimate of trace(H) = E[v^T H v] over Rademacher probes v (one HVP each).

    With ``return_stderr=True`` returns (trace, standard error of the mean over probes).
    The per-probe variance is 2 * sum_{i != j} H_ij^2, large when a few outlier
    eigenvalues dominate the trace.
    """
    check_count("n_probes", n_probes)
    gen = make_generator(generator)
    op = hvp_operator(model, loss_fn, inputs, targets, params=params)
    bdev = basis_device(op.device)
    samples = np.empty(n_probes)
    for i in range(n_probes):
        v = random_vector(op.n, gen, bdev, rademacher=True)
        hv = op(v.to(device=op.device, dtype=op.dtype)).to(device=bdev, dtype=torch.float64)
        samples[i] = float(v @ hv)
    if not np.all(np.isfinite(samples)):
        raise FloatingPointError("a Hessian-vector product is not finite")
    trace = float(samples.mean())
    if not return_stderr:
        return trace
    stderr = float(samples.std(ddof=1) / math.sqrt(n_probes)) if n_probes > 1 else float("nan")
    return trace, stderr
