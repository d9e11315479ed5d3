"""The training trajectory in weight space: PCA of the snapshots and the loss surface in their plane.

Li, Xu, Taylor, Studer & Goldstein 2018 (Visualizing the loss landscape of neural nets, section 7):
stack the differences M = [w_0 - w_T; ...; w_{T-1} - w_T] of the kept snapshots from the final
weights, take the top two principal directions of M (centred, as the authors' code does with
scikit-learn's PCA), draw the loss at w_T + a d1 + b d2 on a grid, and the path projected onto the
plane as a_t = (w_t - w_T) . d1, b_t = (w_t - w_T) . d2. Explained-variance ratios say how much of the
path the plane holds (the paper reports 40-90% for the first two directions).

Snapshots are flat vectors over the trainable parameters in `named_parameters()` order (the layout of
`probes.SnapshotProbe`, `landscape` and `curvature`). The PCA runs on the T x T Gram matrix of M
(T snapshots, n parameters, T << n), in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import landscape

PADDING = 0.25  # the grid reaches this fraction of the path's extent beyond it on each side


@dataclass(frozen=True)
class TrajectoryPCA:
    """Top principal directions of the snapshots' differences from the final weights, and the projected path."""

    directions: np.ndarray  # (k, n) orthonormal rows, float64
    explained_variance_ratio: np.ndarray  # (k,) share of the centred differences' variance per direction
    singular_values: np.ndarray  # (k,)
    steps: np.ndarray  # (T,) step of each snapshot, the final one included
    coordinates: np.ndarray  # (T, k): (w_t - w_final) . d_i; the final snapshot sits at 0
    final: np.ndarray  # (n,) the weights at the origin of the plane, float64

    def path(self) -> pd.DataFrame:
        """The projected path: step, alpha (along d1), beta (along d2)."""
        return pd.DataFrame({"step": self.steps, "alpha": self.coordinates[:, 0],
                             "beta": self.coordinates[:, 1] if self.coordinates.shape[1] > 1 else 0.0})


def _snapshot_matrix(snapshots: object, steps: object) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(snapshots, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] < 2 or w.shape[1] < 1:
        raise ValueError(f"snapshots must be a (T, n) array with at least 2 snapshots (got shape {w.shape})")
    if not np.all(np.isfinite(w)):
        raise ValueError("snapshots must be finite (got NaN or inf weights: did the run diverge?)")
    s = np.arange(len(w)) if steps is None else np.asarray(steps)
    if s.shape != (len(w),):
        raise ValueError(f"steps must have one entry per snapshot ({len(w)}; got shape {s.shape})")
    return w, s


def trajectory_pca(snapshots: object, steps: object = None, n_components: int = 2,
                   center: bool = True) -> TrajectoryPCA:
    """PCA of M = [w_t - w_final] over every snapshot but the last (the final weights w_final).

    ``center`` subtracts the mean row of M first (scikit-learn's PCA, which Li et al.'s code uses);
    without it the directions are M's top right singular vectors. Signs are fixed so that the
    first snapshot has a negative coordinate on each direction (the path runs towards the origin).
    """
    w, s = _snapshot_matrix(snapshots, steps)
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer (got {n_components!r})")
    final = w[-1]
    m = w[:-1] - final
    a = m - m.mean(axis=0) if center else m
    gram = a @ a.T
    evals, evecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0.0, None), evecs[:, order]
    total = float(evals.sum())
    rank = int(np.sum(evals > max(total, np.finfo(float).tiny) * 1e-12))
    if rank < n_components:
        need = n_components + (1 if center else 0)
        raise ValueError(f"the trajectory spans {rank} direction(s), fewer than n_components={n_components}: keep at "
                         f"least {need} snapshots before the last one that do not lie on one line "
                         "(a smaller probes.snapshot_every)")
    sv = np.sqrt(evals[:n_components])
    directions = (a.T @ evecs[:, :n_components] / sv).T
    coords = (w - final) @ directions.T
    flip = np.where(coords[0] > 0, -1.0, 1.0)
    return TrajectoryPCA(directions=directions * flip[:, None], explained_variance_ratio=evals[:n_components] / total,
                         singular_values=sv, steps=s, coordinates=coords * flip, final=final)


def grid_around(values: np.ndarray, points: int, padding: float = PADDING) -> np.ndarray:
    """`points` evenly spaced values covering `values` and 0, widened by `padding` of their extent each side."""
    lo, hi = min(float(np.min(values)), 0.0), max(float(np.max(values)), 0.0)
    span = hi - lo if hi > lo else 1.0
    return np.linspace(lo - padding * span, hi + padding * span, points)


def trajectory_landscape(model: nn.Module, loss_fn, inputs: object, targets: torch.Tensor, pca: TrajectoryPCA,
                         points: int = 21, padding: float = PADDING) -> pd.DataFrame:
    """Loss at w_final + alpha d1 + beta d2 on a grid covering the projected path: DataFrame(alpha, beta, loss)."""
    if pca.directions.shape[0] < 2:
        raise ValueError("the trajectory landscape needs two PCA directions (n_components=2)")
    alphas = grid_around(pca.coordinates[:, 0], points, padding)
    betas = grid_around(pca.coordinates[:, 1], points, padding)
    return landscape.loss_slice_2d(model, loss_fn, inputs, targets, torch.from_numpy(pca.directions[0]),
                                   torch.from_numpy(pca.directions[1]), alphas, betas,
                                   origin=torch.from_numpy(pca.final))


def path_losses(model: nn.Module, loss_fn, inputs: object, targets: torch.Tensor, snapshots: object) -> np.ndarray:
    """The loss at each snapshot itself (off the plane, unlike the surface under the projected path)."""
    w = np.asarray(snapshots, dtype=np.float64)
    return np.array([landscape.loss_at(model, loss_fn, inputs, targets, torch.from_numpy(row)) for row in w])
