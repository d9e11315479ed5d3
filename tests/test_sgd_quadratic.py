"""The solvable SGD reference for the critical batch size: exact recursion against Monte Carlo SGD and
closed forms, and the numbers the critical_batch_size docs quote."""

import math

import numpy as np
import pytest

from learnmech_core.sgd_quadratic import loss_curves, noise_scales, steps_to, tradeoff


def test_recursion_equals_monte_carlo_sgd():
    rng = np.random.default_rng(0)
    d, b, eta, steps, reps = 6, 2, 0.3, 25, 6000
    lam = np.geomspace(1.0, 0.1, d)
    e = np.tile(np.ones(d) / np.sqrt(d), (reps, 1))
    for _ in range(steps):
        x = rng.standard_normal((reps, b, d)) * np.sqrt(lam)
        r = np.einsum("rbd,rd->rb", x, e)
        e = e - eta * np.einsum("rbd,rb->rd", x, r) / b
    losses = 0.5 * (lam * e**2).sum(axis=1)
    exact = loss_curves(lam, np.full(d, 1.0 / d), [eta], b, steps)[0, -1]
    assert abs(losses.mean() - exact) < 4 * losses.std() / math.sqrt(reps)
    assert abs(losses.mean() / exact - 1) < 0.05


def test_isotropic_closed_form():
    d, b, eta = 10, 3, 0.2
    curve = loss_curves(np.ones(d), np.full(d, 0.1), [eta], b, 30)[0]
    rho = 1 - 2 * eta + eta**2 * (1 + (d + 1) / b)
    np.testing.assert_allclose(curve, 0.5 * rho ** np.arange(31), rtol=1e-12)
    np.testing.assert_allclose(noise_scales(np.ones(d), np.full(d, 0.1), eta, 5), d + 1)
    gd = loss_curves(np.ones(d), np.full(d, 0.1), [eta], math.inf, 3)[0]
    np.testing.assert_allclose(gd, 0.5 * (1 - eta) ** (2 * np.arange(4)))


def test_steps_to_interpolates_in_log_loss():
    curves = np.array([[1.0, 0.1, 0.01], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(steps_to(curves, 0.1 ** 1.5), [1.5, np.inf])


def test_tradeoff_on_the_isotropic_model_matches_the_optimal_rate():
    d = 16
    r = tradeoff(np.ones(d), batches=(1, 4, 16, 64, math.inf))
    # optimal eta = B / (B + d + 1) gives a per-step factor 1 - eta: S = log(20) / -log(1 - B / (B + d + 1))
    for b, s in zip((1, 4, 16), r["steps"][:3], strict=True):
        assert s == pytest.approx(math.log(20) / -math.log(1 - b / (b + d + 1)), rel=0.01)
    assert r["mean_b_noise"] == pytest.approx(d + 1)


def test_mean_noise_scale_hinges_on_the_full_batch_learning_rate():
    """1/k spectrum: full-batch lr 1.8 vs 1.9 changes steps to 5% of L_0 by 2% but mean B_noise ~11x."""
    d = 64
    lam, e2 = 1.0 / np.arange(1, d + 1), np.full(d, 1.0 / d)
    out = {}
    for lr in (1.8, 1.9):
        c = loss_curves(lam, e2, [lr], math.inf, 100)
        s = steps_to(c, 0.05 * c[0, 0])[0]
        out[lr] = (s, noise_scales(lam, e2, lr, math.ceil(s))[: math.ceil(s)].mean())
    assert out[1.8][0] == pytest.approx(16.63, abs=0.01) and out[1.9][0] == pytest.approx(16.95, abs=0.01)
    assert out[1.8][1] == pytest.approx(93.6, abs=0.1) and out[1.9][1] == pytest.approx(8.5, abs=0.1)
