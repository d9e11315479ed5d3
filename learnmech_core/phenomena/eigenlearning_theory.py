"""Eigenlearning: the test error of kernel ridge regression from the kernel's eigenvalues alone.

For a kernel with eigenvalues lambda_i and a target with eigencoefficients v_i (with respect to the input
measure), n samples and ridge delta (added to the n x n Gram matrix), the effective regularisation kappa
solves sum_i lambda_i / (lambda_i + kappa) + delta / kappa = n; mode i is learned to the fraction
L_i = lambda_i / (lambda_i + kappa); and the test MSE is E0 (sum_i (1 - L_i)^2 v_i^2 + noise) with the
overfitting coefficient E0 = n / (n - sum_i L_i^2) (Simon et al. 2023; Bordelon et al. 2020; Canatar et al.
2021). On a finite domain of M points with the uniform measure the eigensystem is exact: the eigenvalues
of K / M, eigenfunctions sqrt(M) times its eigenvectors.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import brentq


def _check(eigenvalues) -> np.ndarray:
    lam = np.asarray(eigenvalues, dtype=float)
    if lam.ndim != 1 or not len(lam) or not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues must be a non-empty 1-D array of finite numbers")
    return np.clip(lam, 0.0, None)


def solve_kappa(eigenvalues, n: float, ridge: float = 0.0) -> float:
    """The effective regularisation kappa > 0 with sum lambda/(lambda + kappa) + ridge/kappa = n."""
    lam = _check(eigenvalues)
    if n <= 0:
        raise ValueError(f"n must be positive (got {n})")
    if ridge < 0:
        raise ValueError(f"ridge must be non-negative (got {ridge})")
    rank = int(np.sum(lam > 0))
    if ridge == 0 and n >= rank:
        raise ValueError(f"n must be below the kernel's rank {rank} without a ridge (got {n})")

    def excess(log_kappa):
        kappa = np.exp(log_kappa)
        return float(np.sum(lam / (lam + kappa)) + ridge / kappa - n)

    hi = np.log((lam.sum() + ridge) * 2.0 / n)  # there the left side is at most n/2
    lo = hi
    while excess(lo) <= 0:
        lo -= 5.0
        if lo < hi - 800:
            raise ValueError("could not bracket kappa (eigenvalues too small for this n)")
    return float(np.exp(brentq(excess, lo, hi, xtol=1e-12, rtol=1e-12)))


def learnabilities(eigenvalues, kappa: float) -> np.ndarray:
    """L_i = lambda_i / (lambda_i + kappa): the fraction of mode i that is learned."""
    lam = _check(eigenvalues)
    return lam / (lam + kappa)


def predicted_test_mse(eigenvalues, target_power, n: float, ridge: float = 0.0, noise: float = 0.0) -> float:
    """E0 (sum (1 - L_i)^2 v_i^2 + noise) with E0 = n / (n - sum L_i^2)."""
    lam = _check(eigenvalues)
    v2 = np.asarray(target_power, dtype=float)
    if v2.shape != lam.shape:
        raise ValueError(f"target_power must have one entry per eigenvalue ({len(lam)}; got {v2.shape})")
    kappa = solve_kappa(lam, n, ridge)
    learn = lam / (lam + kappa)
    e0 = n / (n - np.sum(learn**2))
    return float(e0 * (np.sum((1.0 - learn) ** 2 * v2) + noise))


def learning_curve(eigenvalues, target_power, ns, ridge: float = 0.0, noise: float = 0.0) -> np.ndarray:
    """predicted_test_mse at every n."""
    return np.array([predicted_test_mse(eigenvalues, target_power, n, ridge, noise) for n in ns])


def eigensystem(kernel: np.ndarray, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (largest first) and orthonormal eigenvectors of K / M: the kernel operator on M points.

    The decomposition runs in float64 on `device` (a GPU makes the full size's M = 8192 quick).
    """
    k = torch.as_tensor(np.asarray(kernel, dtype=float), device=device)
    m = k.shape[0]
    lam, vecs = torch.linalg.eigh(0.5 * (k + k.T) / m)
    lam, vecs = lam.cpu().numpy(), vecs.cpu().numpy()
    return np.clip(lam[::-1], 0.0, None), np.ascontiguousarray(vecs[:, ::-1])


def target_power(eigenvectors: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """v_i^2 summed over outputs, v_i = <f, phi_i> under the uniform measure on the M points."""
    y = np.asarray(targets, dtype=float).reshape(len(eigenvectors), -1)
    coef = eigenvectors.T @ y / np.sqrt(len(y))
    return np.sum(coef**2, axis=1)
