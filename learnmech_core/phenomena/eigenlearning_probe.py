"""Probe: kernel regression with a network's empirical NTK at initialisation, measured and decomposed.

At step 0 only, on the M probe examples (the finite input domain, uniform measure): the empirical NTK
K (M x M, `ntk.empirical_ntk`), its eigenvalues under the measure and the target's power per eigenmode,
and the measured learning curve of kernel ridge regression: for each n in a geometric grid from 10 to
M/8, training sets of n distinct points drawn at random (seeded by the run's seed) and the test MSE
(squared error summed over outputs) over all M points, averaged over trials. Spectra rows (layer
"ntk"): `kernel_eigenvalue` and `target_power` (index = mode), `krr_test_mse` and `krr_test_mse_se`
(index = n). Scalars: `eig_points` M, `eig_ridge` (the ridge added to the Gram matrix).
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


def kernel_regression_curve(kernel: np.ndarray, targets: np.ndarray, ns, ridge: float,
                            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over trials of the population test MSE of kernel ridge regression."""
    m = len(kernel)
    y = targets.reshape(m, -1)
    means, ses = [], []
    for n in ns:
        errors = []
        for _ in range(trials_for(int(n))):
            idx = rng.choice(m, size=int(n), replace=False)
            gram = kernel[np.ix_(idx, idx)] + ridge * np.eye(len(idx))
            alpha = np.linalg.solve(gram, y[idx])
            errors.append(float(np.mean(np.sum((kernel[:, idx] @ alpha - y) ** 2, axis=1))))
        means.append(np.mean(errors))
        ses.append(np.std(errors, ddof=1) / np.sqrt(len(errors)))
    return np.array(means), np.array(ses)


def as_targets(targets: torch.Tensor, n_outputs: int) -> np.ndarray:
    """Float targets (M x outputs): labels become one-hot rows."""
    if not targets.is_floating_point():
        targets = torch.nn.functional.one_hot(targets, n_outputs)
    return targets.detach().double().cpu().numpy().reshape(len(targets), -1)


class KernelLearningCurveProbe(Probe):
    """Empirical NTK at init: eigenvalues, target power and the measured kernel-regression learning curve."""

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
        ns = sample_sizes(m)
        rng = np.random.default_rng([ctx.spec.seed, ctx.spec.data.seed, 17])
        mean, se = kernel_regression_curve(kernel, y, ns, ridge, rng)
        rows = [("kernel_eigenvalue", "ntk", i, float(v)) for i, v in enumerate(lam)]
        rows += [("target_power", "ntk", i, float(v)) for i, v in enumerate(power)]
        rows += [("krr_test_mse", "ntk", int(n), float(v)) for n, v in zip(ns, mean)]
        rows += [("krr_test_mse_se", "ntk", int(n), float(v)) for n, v in zip(ns, se)]
        return {"eig_points": float(m), "eig_ridge": ridge}, rows


def cpu_safe_ntk(model, inputs) -> np.ndarray:
    """ntk.empirical_ntk, on a CPU copy when the model lives elsewhere (it converts blocks with .numpy())."""
    from ..ntk import empirical_ntk

    if inputs.device.type == "cpu":
        return empirical_ntk(model, inputs)
    return empirical_ntk(copy.deepcopy(model).cpu(), inputs.cpu())
