"""Exact expected SGD on noiseless linear regression with Gaussian inputs: a solvable reference for
the critical-batch-size theory (McCandlish et al. 2018).

Inputs x ~ N(0, H) with H = diag(eigenvalues) (any H, written in its eigenbasis), targets y = x . w*,
loss L = E[(x . e)^2] / 2 = tr(H E) / 2 with e = w - w* and E = E[e e^T]. A step with batch B and
learning rate eta, e' = e - (eta / B) sum_b x_b x_b^T e, gives by the Gaussian fourth moment
E[x x^T A x x^T] = tr(H A) H + 2 H A H, exactly,

    E' = (I - eta H) E (I - eta H) + (eta^2 / B) (tr(H E) H + H E H),

which stays diagonal when E starts diagonal, so the recursion runs on diag(E) (`b = inf` is gradient
descent). The per-example gradient covariance is Sigma = tr(H E) H + H E H, so along a gradient-descent
run (E = e e^T) the Hessian-weighted noise scale is

    B_noise = tr(H Sigma) / (G^T H G) = 1 + tr(H E) tr(H^2) / tr(H^3 E).

`tradeoff` tunes a constant learning rate per batch size, fits S(B) = S_min + E_min / B and compares
B_crit = E_min / S_min with B_noise averaged over the steps of the tuned gradient-descent run, the same
measurement the critical_batch_size phenomenon makes on a network. With H = I, B_noise = d + 1 at every
step and the loss falls by exactly 1 - 2 eta + eta^2 (1 + (d + 1) / B) per step.
"""

from __future__ import annotations

import math

import numpy as np


def loss_curves(eigenvalues, e2, lrs, batch: float, steps: int) -> np.ndarray:
    """Expected loss L_t (t = 0..steps) for each learning rate: array (len(lrs), steps + 1).

    `e2` is the diagonal of E at the start (the squared initial error per eigendirection); batch may be inf.
    """
    lam = np.asarray(eigenvalues, dtype=float)
    eta = np.asarray(lrs, dtype=float)[:, None]
    e = np.broadcast_to(np.asarray(e2, dtype=float), (eta.shape[0], lam.size)).copy()
    noise = 0.0 if math.isinf(batch) else eta**2 / batch
    out = np.empty((eta.shape[0], steps + 1))
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps + 1):
            hl = e @ lam
            out[:, t] = 0.5 * hl
            e = (1.0 - eta * lam) ** 2 * e + noise * (lam * hl[:, None] + lam**2 * e)
    return out


def steps_to(curves: np.ndarray, target: float) -> np.ndarray:
    """First (fractional, log-interpolated) step where each curve reaches the target; inf if never."""
    from .phenomena.critical_batch_size import crossing_step

    steps = np.arange(curves.shape[1], dtype=float)
    out = np.array([crossing_step(steps, c, target) for c in curves])
    return np.where(np.isnan(out), np.inf, out)


def noise_scales(eigenvalues, e2, lr: float, steps: int) -> np.ndarray:
    """B_noise = 1 + tr(H E) tr(H^2) / tr(H^3 E) at each step of gradient descent (steps + 1 values)."""
    lam = np.asarray(eigenvalues, dtype=float)
    e = np.asarray(e2, dtype=float).copy()
    out = np.empty(steps + 1)
    for t in range(steps + 1):
        out[t] = 1.0 + (e @ lam) * float(lam @ lam) / (e @ lam**3)
        e = (1.0 - lr * lam) ** 2 * e
    return out


def tradeoff(eigenvalues, e2=None, batches=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, math.inf),
             lrs=None, fraction: float = 0.05, max_steps: int = 20_000) -> dict:
    """Steps to fraction x L_0 per batch size (best constant lr), the hyperbola fit and the noise scale.

    Returns steps, best lrs, s_min, e_min, b_crit, r2 (as `fit_tradeoff`), mean_b_noise (over the steps
    of the tuned gradient-descent run to the target) and ratio = b_crit / mean_b_noise.
    """
    from .phenomena.critical_batch_size import fit_tradeoff

    lam = np.asarray(eigenvalues, dtype=float)
    e2 = np.full(lam.size, 1.0 / lam.size) if e2 is None else np.asarray(e2, dtype=float)
    lrs = np.geomspace(0.01, 2.0 / lam.max(), 160) if lrs is None else np.asarray(lrs, dtype=float)
    target = fraction * 0.5 * float(e2 @ lam)
    steps, best = [], []
    for b in batches:
        horizon = 64
        while True:
            s = steps_to(loss_curves(lam, e2, lrs, b, horizon), target)
            if np.isfinite(s).any() or horizon >= max_steps:
                break
            horizon *= 4
        i = int(np.argmin(s))
        steps.append(float(s[i]))
        best.append(float(lrs[i]))
    fit = fit_tradeoff(list(batches), steps, math.inf)
    gd_lr, gd_steps = best[-1], steps[-1]
    path = noise_scales(lam, e2, gd_lr, int(math.ceil(gd_steps)))
    mean_b = float(np.mean(path[: max(int(math.ceil(gd_steps)), 1)]))
    return {"steps": steps, "lrs": best, **fit, "mean_b_noise": mean_b, "ratio": fit["b_crit"] / mean_b}
