"""Closed forms for deep linear networks learning one singular mode at a time (Saxe et al. 2014).

With whitened inputs, targets y = W* x and the loss 0.5 sum_outputs mean_examples, gradient descent with
learning rate eta is gradient flow in time t = eta x step (tau = 1). For a balanced, decoupled mode of
strength s the product u of the D per-layer scalars obeys du/dt = D u^(2-2/D) (s - u); for D = 2 this
is the logistic u(t) = s e^(2st) / (e^(2st) - 1 + s/u0). In the rescaled time r = D s^(2-2/D) (t - t_half)
every mode of a depth-D net follows one curve x = u/s with dx/dr = x^(2-2/D) (1 - x), x(0) = 1/2 (the
logistic 1 / (1 + e^-r) for D = 2).
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import quad

RISE_FROM, RISE_TO = 0.2, 0.8  # a mode's rise time: from 20% to 80% of its singular value


def two_layer_mode(t, s: float, u0: float) -> np.ndarray:
    """Saxe's closed form u(t) = s e^(2st) / (e^(2st) - 1 + s/u0) (two layers, tau = 1)."""
    t = np.asarray(t, dtype=float)
    if u0 <= 0:
        raise ValueError(f"u0 must be positive for the closed form (got {u0:g})")
    # divide through by e^(2st) so that long times do not overflow
    decay = np.exp(-2.0 * s * t)
    return s / (1.0 - decay + decay * s / u0)


def effective_u0(a0: np.ndarray, b0: np.ndarray) -> float:
    """Initial strength of a mode from small random weights: |a0 + b0|^2 / 4.

    a0 = W1 v (input side) and b0 = W2^T u (output side); early on a + b grows as e^(st) and a - b
    decays as e^(-st), so u = a.b follows the closed form from this value (balanced init: a0 = b0).
    """
    return float(np.sum((np.asarray(a0) + np.asarray(b0)) ** 2) / 4.0)


def rescaled_time_of(x, depth: int) -> np.ndarray:
    """r(x) = integral from 1/2 to x of dy / (y^(2-2/D) (1 - y)): the universal depth-D curve, inverted."""
    x = np.atleast_1d(np.asarray(x, dtype=float))
    p = 2.0 - 2.0 / depth
    if depth == 2:
        return np.log(x / (1.0 - x))
    return np.array([quad(lambda y: 1.0 / (y**p * (1.0 - y)), 0.5, xi)[0] for xi in x])


def universal_curve(depth: int, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(rescaled time r, u/s) along the depth-D curve, for x from 0.01 to 0.99."""
    x = np.linspace(0.01, 0.99, points)
    return rescaled_time_of(x, depth), x


def rise_time(s: float, depth: int) -> float:
    """Predicted time for a mode to go from 20% to 80% of s: independent of the initial strength."""
    lo, hi = rescaled_time_of([RISE_FROM, RISE_TO], depth)
    return float((hi - lo) / (depth * s ** (2.0 - 2.0 / depth)))


def rescaled_time(t, s: float, depth: int, t_half: float) -> np.ndarray:
    """r = D s^(2-2/D) (t - t_half)."""
    return depth * s ** (2.0 - 2.0 / depth) * (np.asarray(t, dtype=float) - t_half)


def crossing_time(t: np.ndarray, u: np.ndarray, level: float) -> float:
    """First time u reaches level, linearly interpolated between samples (NaN if it never does)."""
    t, u = np.asarray(t, dtype=float), np.asarray(u, dtype=float)
    above = np.nonzero(u >= level)[0]
    if len(above) == 0:
        return float("nan")
    i = above[0]
    if i == 0:
        return float(t[0])
    frac = (level - u[i - 1]) / (u[i] - u[i - 1])
    return float(t[i - 1] + frac * (t[i] - t[i - 1]))
