"""Probe: kernel regression with a network's empirical NTK at initialisation, measured and decomposed.

At step 0 only, on the M probe examples (the finite input domain, uniform measure): the empirical NTK
K (M x M, `ntk.empirical_ntk`), its eigenvalues under the measure and the target's power per eigenmode,
and the measured learning curve of kernel ridge regression: for each n in a geometric grid from 10 to
M/8, training sets of n distinct points drawn at random (seeded by the run's seed) and the test MSE
(squared error summed over outputs) over all M points, averaged over trials. On the same training sets,
the learnability of eigenfunctions phi_i (Simon et al.): L(phi_i) = <phi_i, f_hat> with f_hat the kernel
regressor fitted to phi_i itself, for modes at geometrically spaced indices (`learnability_modes`).
Spectra rows: layer "ntk": `kernel_eigenvalue` and `target_power` (index = mode), `krr_test_mse` and
`krr_test_mse_se` (index = n); layer "ntk n=<n>": `learnability` and `learnability_se` (index = mode).
Scalars: `eig_points` M, `eig_ridge` (the ridge added to the Gram matrix).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..probes import Probe
from .eigenlearning_theory import eigensystem, target_power

RIDGE = 1e-5  # times the mean diagonal of K: numerically safe, far below the learning curve's kappa
N_MIN = 10


def sample_sizes(m: int, points: int = 8) -> np.ndarray:
    """Geometric grid of training-set sizes from 10 to M/8 (the theory is for n much smaller than M)."""
    top = max(N_MIN + 1, m // 8)
    return np.unique(np.round(np.geomspace(N_MIN, top, points)).astype(int))


def trials_for(n: int) -> int:
    """More draws for small n, whose test error fluctuates more."""
    return int(max(8, min(64, 4000 // n)))


def learnability_modes(m: int, points: int = 12) -> np.ndarray:
    """Geometrically spaced mode indices 0 .. M-1 whose learnability is measured."""
    return np.unique(np.round(np.geomspace(1, m, points)).astype(int)) - 1


def kernel_regression_curve(kernel: np.ndarray, targets: np.ndarray, ns, ridge: float,
                            rng: np.random.Generator, eigenfunctions: np.ndarray | None = None) -> dict:
    """Mean and standard error over trials of the population test MSE of kernel ridge regression; with
    `eigenfunctions` (M x k, unit norm under the uniform measure) also of their learnabilities, fitted on
    the same training sets: keys mse, mse_se (per n) and learn, learn_se (n x k)."""
    m = len(kernel)
    y = targets.reshape(m, -1)
    phi = np.zeros((m, 0)) if eigenfunctions is None else eigenfunctions
    out = {"mse": [], "mse_se": [], "learn": [], "learn_se": []}
    for n in ns:
        errors, learn = [], []
        for _ in range(trials_for(int(n))):
            idx = rng.choice(m, size=int(n), replace=False)
            gram = kernel[np.ix_(idx, idx)] + ridge * np.eye(len(idx))
            alpha = np.linalg.solve(gram, np.concatenate([y[idx], phi[idx]], axis=1))
            fitted = kernel[:, idx] @ alpha
            errors.append(float(np.mean(np.sum((fitted[:, : y.shape[1]] - y) ** 2, axis=1))))
            learn.append(np.mean(phi * fitted[:, y.shape[1]:], axis=0))  # <phi_i, f_hat_i>
        learn = np.array(learn)
        out["mse"].append(np.mean(errors))
        out["mse_se"].append(np.std(errors, ddof=1) / np.sqrt(len(errors)))
        out["learn"].append(learn.mean(axis=0))
        out["learn_se"].append(learn.std(axis=0, ddof=1) / np.sqrt(len(learn)))
    return {k: np.array(v) for k, v in out.items()}


def as_targets(targets: torch.Tensor, n_outputs: int) -> np.ndarray:
    """Float targets (M x outputs): labels become one-hot rows."""
    if not targets.is_floating_point():
        targets = torch.nn.functional.one_hot(targets, n_outputs)
    return targets.detach().double().cpu().numpy().reshape(len(targets), -1)


class EigenlearningProbe(Probe):
    """Empirical NTK at init: eigenvalues, target power, the measured learning curve and eigenmode learnabilities."""

    name = "eigenlearning"

    def due(self, step: int, last: bool) -> bool:
        return self.every > 0 and step == 0

    def measure(self, ctx):
        kernel = cpu_safe_ntk(ctx.model, ctx.inputs)
        m = len(kernel)
        with torch.no_grad():
            n_out = ctx.model(ctx.inputs[:1]).shape[1]
        y = as_targets(ctx.targets, n_out)
        lam, vecs = eigensystem(kernel, ctx.inputs.device)
        power = target_power(vecs, y)
        ridge = RIDGE * float(np.trace(kernel)) / m
        ns, modes = sample_sizes(m), learnability_modes(m)
        rng = np.random.default_rng([ctx.spec.seed, ctx.spec.data.seed, 17])
        c = kernel_regression_curve(kernel, y, ns, ridge, rng, np.sqrt(m) * vecs[:, modes])
        rows = [("kernel_eigenvalue", "ntk", i, float(v)) for i, v in enumerate(lam)]
        rows += [("target_power", "ntk", i, float(v)) for i, v in enumerate(power)]
        rows += [("krr_test_mse", "ntk", int(n), float(v)) for n, v in zip(ns, c["mse"], strict=True)]
        rows += [("krr_test_mse_se", "ntk", int(n), float(v)) for n, v in zip(ns, c["mse_se"], strict=True)]
        for j, n in enumerate(ns):
            rows += [("learnability", f"ntk n={int(n)}", int(i), float(v)) for i, v in zip(modes, c["learn"][j],
                                                                                              strict=True)]
            rows += [("learnability_se", f"ntk n={int(n)}", int(i), float(v)) for i, v in zip(modes, c["learn_se"][j],
                                                                                                 strict=True)]
        return {"eig_points": float(m), "eig_ridge": ridge}, rows


def cpu_safe_ntk(model, inputs) -> np.ndarray:
    """ntk.empirical_ntk, on a CPU copy when the model lives elsewhere (it converts blocks with .numpy())."""
    from ..ntk import empirical_ntk

    if inputs.device.type == "cpu":
        return empirical_ntk(model, inputs)
    return empirical_ntk(copy.deepcopy(model).cpu(), inputs.cpu())
