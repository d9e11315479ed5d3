"""Weight spectra: power-law alpha on known Pareto tails, MP fits on Gaussian matrices, conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from torch import nn

from learnmech_core import spectra


def pareto_with_bulk(alpha: float, n_tail: int, n_bulk: int, seed: int) -> np.ndarray:
    """n_tail draws from p(x) ~ x^-alpha on [1, inf) plus a uniform (non-power-law) bulk on [0.05, 1)."""
    rng = np.random.default_rng(seed)
    tail = (1.0 - rng.random(n_tail)) ** (-1.0 / (alpha - 1.0))
    bulk = rng.uniform(0.05, 1.0, n_bulk)
    return rng.permutation(np.concatenate([bulk, tail]))


def literal_ww_scan(evals: np.ndarray, min_tail: int) -> tuple[float, float, float]:
    """WeightWatcher 0.7.7's per-xmin loop, written out literally: (alpha, xmin, ks)."""
    data = np.sort(evals)
    small = data.size < 20
    best = (np.inf, np.nan, np.nan)
    for i, xmin in enumerate(data[: data.size - min_tail + 1]):
        tail = data[i:]
        n = tail.size
        alpha = 1 + (n - 1 if small else n) / np.sum(np.log(tail / xmin))
        ks = np.max(np.abs(1 - (tail / xmin) ** (1 - alpha) - np.arange(n) / n))
        if ks < best[0]:
            best = (ks, alpha, xmin)
    return best[1], best[2], best[0]


@pytest.mark.parametrize("alpha", [1.5, 2.0, 2.5, 3.0, 4.0, 5.0])
def test_power_law_alpha_recovers_pareto_exponent(alpha):
    # 5,000 tail draws above a 2,000-point bulk. The KS-chosen xmin makes the estimate noisier than
    # the plain MLE (about 0.09 standard deviation at alpha = 5), so from alpha = 3 on the mean of
    # three independent samples must be within 0.1 (each within 0.3).
    n_samples = 1 if alpha < 3 else 3
    fits = [
        spectra.power_law_alpha(pareto_with_bulk(alpha, 5000, 2000, seed=1000 * int(alpha * 10) + s))
        for s in range(n_samples)
    ]
    assert abs(np.mean([f.alpha for f in fits]) - alpha) < 0.1
    for fit in fits:
        assert abs(fit.alpha - alpha) < 0.3
        assert fit.xmin >= 0.8  # the uniform bulk below 1 is left out of the tail
        assert fit.n_tail >= 8 and 0 <= fit.ks_distance < 0.05
        assert fit.sigma == pytest.approx((fit.alpha - 1) / math.sqrt(fit.n_tail))


@pytest.mark.parametrize("size", [12, 60, 400, 2500])  # 400 and 2500 take the pruned scan
def test_power_law_alpha_matches_literal_weightwatcher_loop(size):
    rng = np.random.default_rng(size)
    x = np.exp(rng.normal(size=size) * 1.5)
    for min_tail in (2, 8):
        fit = spectra.power_law_alpha(x, min_tail=min_tail)
        alpha, xmin, ks = literal_ww_scan(x, min_tail)
        assert fit.alpha == pytest.approx(alpha, rel=1e-12)
        assert fit.xmin == xmin
        assert fit.ks_distance == pytest.approx(ks, rel=1e-9)


def test_power_law_alpha_is_scale_invariant_and_given_xmin_is_mle():
    x = pareto_with_bulk(3.0, 500, 200, seed=3)
    a, b = spectra.power_law_alpha(x), spectra.power_law_alpha(x * 1e-3)
    assert a.alpha == pytest.approx(b.alpha, rel=1e-10) and b.xmin == pytest.approx(a.xmin * 1e-3)
    fixed = spectra.power_law_alpha(x, xmin=1.0)
    tail = x[x >= 1.0]
    assert fixed.alpha == pytest.approx(1 + tail.size / np.sum(np.log(tail)), rel=1e-12)
    assert fixed.n_tail == tail.size


def test_power_law_alpha_drops_zero_eigenvalues():
    x = pareto_with_bulk(2.5, 300, 100, seed=4)
    assert spectra.power_law_alpha(np.concatenate([x, np.zeros(50)])) == spectra.power_law_alpha(x)


def test_mp_cdf_integrates_density():
    for q in (0.1, 0.5, 1.0):
        lo, hi = spectra.mp_edges(2.0, q)
        for x in np.linspace(lo + 1e-9, hi, 7):
            numeric, _ = integrate.quad(lambda t, q=q: spectra.mp_density(t, 2.0, q)[()], lo, x, limit=200)
            assert spectra.mp_cdf(x, 2.0, q) == pytest.approx(numeric, abs=1e-7)
        assert spectra.mp_cdf(hi * 1.01, 2.0, q) == 1.0 and spectra.mp_cdf(lo * 0.99, 2.0, q) == 0.0


@pytest.mark.parametrize("q", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("sigma", [0.05, 1.0, 3.0])
def test_marchenko_pastur_fit_recovers_variance_and_edge(q, sigma):
    rng = np.random.default_rng(int(100 * q + 10 * sigma))
    n = 500
    m = int(q * n)
    w = rng.normal(scale=sigma, size=(m, n))  # wide on purpose: weight_esd orients it
    evals = spectra.weight_esd(w)
    assert evals.size == m
    fit = spectra.marchenko_pastur_fit(evals, m / n)
    assert fit.sigma2 == pytest.approx(sigma**2, rel=0.02)
    assert fit.lambda_plus == pytest.approx(sigma**2 * (1 + math.sqrt(q)) ** 2, rel=0.03)
    assert fit.lambda_minus == pytest.approx(sigma**2 * (1 - math.sqrt(q)) ** 2, abs=0.03 * sigma**2)
    assert fit.n_outliers == 0
    assert fit.ks_distance < 0.05


def test_marchenko_pastur_fit_counts_planted_spike():
    rng = np.random.default_rng(7)
    n, m = 500, 250
    noise = rng.normal(size=(n, m))
    u, v = rng.normal(size=n), rng.normal(size=m)
    spike = 3.0 * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v)) * math.sqrt(n)
    fit = spectra.marchenko_pastur_fit(spectra.weight_esd(noise + spike), m / n)
    assert fit.n_outliers == 1
    assert fit.sigma2 == pytest.approx(1.0, rel=0.02)


def test_weight_esd_of_conv_equals_manual_reshape():
    conv = nn.Conv2d(3, 8, kernel_size=3)
    manual = conv.weight.detach().double().reshape(8, 27)
    expected = np.sort(np.linalg.eigvalsh((manual @ manual.T).numpy()) / 27)
    assert spectra.weight_matrix(conv.weight).shape == (8, 27)
    np.testing.assert_allclose(spectra.weight_esd(spectra.weight_matrix(conv.weight)), expected, rtol=1e-10, atol=1e-14)


def test_weight_esd_orientation_and_order():
    w = torch.randn(30, 70, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    evals = spectra.weight_esd(w)
    assert evals.dtype == np.float64 and evals.size == 30 and np.all(np.diff(evals) >= 0)
    np.testing.assert_allclose(evals, np.sort(np.linalg.eigvalsh((w @ w.T).numpy())) / 70, rtol=1e-10)
    np.testing.assert_allclose(spectra.weight_esd(w.T), evals, rtol=1e-12)


def test_spectral_norm_and_stable_rank():
    w = np.diag([3.0, 2.0, 1.0])
    assert spectra.spectral_norm(w) == pytest.approx(3.0)
    assert spectra.stable_rank(w) == pytest.approx(14.0 / 9.0)
    assert spectra.stable_rank(np.zeros((3, 3))) == 0.0


def test_layer_summaries_and_esd_rows():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 16, 3), nn.Flatten(), nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    table = spectra.layer_summaries(model)
    assert list(table["layer"]) == ["0.weight", "2.weight", "4.weight"]
    assert list(table["shape"]) == ["16x2x3x3", "40x64", "3x40"]
    assert list(table["n"]) == [18, 64, 40] and list(table["m"]) == [16, 40, 3]
    assert np.isnan(table["alpha"].iloc[2])  # 3 eigenvalues: too few for a tail fit
    assert np.isfinite(table.loc[:1, ["alpha", "xmin", "mp_sigma2", "mp_lambda_plus", "mp_ks"]].to_numpy()).all()
    rows = spectra.esd_rows(model, step=5)
    assert list(rows.columns) == ["step", "kind", "layer", "index", "value"]
    assert len(rows) == 16 + 40 + 3 and set(rows["kind"]) == {"weight_esd"} and set(rows["step"]) == {5}
    first = rows[rows["layer"] == "2.weight"]["value"].to_numpy()
    np.testing.assert_allclose(first, spectra.weight_esd(model[2].weight))
    assert spectra.esd_rows(nn.ReLU(), 0).empty


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: spectra.weight_esd(np.ones(5)), r"matrix must be 2-D \(got shape \(5,\)\)"),
        (lambda: spectra.weight_esd(np.full((2, 2), np.nan)), "matrix must be finite"),
        (lambda: spectra.weight_matrix(torch.ones(5)), "param must be"),
        (lambda: spectra.power_law_alpha(np.ones((2, 2))), "eigenvalues must be 1-D"),
        (lambda: spectra.power_law_alpha([]), "eigenvalues must be non-empty"),
        (lambda: spectra.power_law_alpha([1.0, 2.0, 3.0]), "at least min_tail=8"),
        (lambda: spectra.power_law_alpha(np.arange(1.0, 20.0), min_tail=1), "min_tail must be"),
        (lambda: spectra.power_law_alpha(np.arange(1.0, 20.0), xmin=-1.0), "xmin must be"),
        (lambda: spectra.power_law_alpha([0.0, 0.0]), "eigenvalues must contain positive"),
        (lambda: spectra.marchenko_pastur_fit(np.arange(1.0, 9.0), 1.5), r"aspect_ratio must be in \(0, 1\]"),
        (lambda: spectra.marchenko_pastur_fit([-1.0, 1.0], 0.5), "eigenvalues must be non-negative"),
        (lambda: spectra.mp_density(1.0, -1.0, 0.5), "sigma2 must be"),
        (lambda: spectra.layer_summaries("model"), "model must be a torch.nn.Module"),
    ],
)
def test_bad_inputs_raise_value_error_naming_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_layer_summaries_norms_match_direct_computation():
    model = nn.Sequential(nn.Linear(7, 12), nn.Tanh(), nn.Linear(12, 30))
    table = spectra.layer_summaries(model)
    for row, layer in zip(table.itertuples(), (model[0], model[2]), strict=True):
        assert row.spectral_norm == pytest.approx(spectra.spectral_norm(layer.weight), rel=1e-10)
        assert row.stable_rank == pytest.approx(spectra.stable_rank(layer.weight), rel=1e-10)
