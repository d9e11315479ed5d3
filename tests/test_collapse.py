"""Neural collapse metrics: exactly zero on a constructed collapsed set, positive otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from learnmech_core import collapse


@pytest.mark.parametrize("n_classes, dim", [(2, 3), (4, 3), (10, 32)])
def test_simplex_etf_geometry(n_classes, dim):
    etf = collapse.simplex_etf(n_classes, dim, scale=2.5)
    np.testing.assert_allclose(np.linalg.norm(etf, axis=1), 2.5, rtol=1e-12)
    cos = etf @ etf.T / 2.5**2
    np.testing.assert_allclose(cos[~np.eye(n_classes, dtype=bool)], -1.0 / (n_classes - 1), atol=1e-12)
    np.testing.assert_allclose(etf.sum(axis=0), 0.0, atol=1e-12)


def collapsed_set(n_classes: int = 5, dim: int = 8, per_class: int = 6, offset: float = 0.0):
    etf = collapse.simplex_etf(n_classes, dim, scale=3.0)
    labels = np.repeat(np.arange(n_classes), per_class)
    shift = offset * np.linspace(-1.0, 1.0, dim)
    return etf[labels] + shift, labels, etf, shift


@pytest.mark.parametrize("offset", [0.0, 4.0])
def test_collapsed_features_give_zero_metrics(offset):
    features, labels, etf, shift = collapsed_set(offset=offset)
    weight, bias = etf, -etf @ shift  # classifier = the centred means; the bias undoes the global offset
    nc = collapse.neural_collapse(features, labels, weight, bias)
    for value in (nc.nc1, nc.nc2_equinorm, nc.nc2_equiangle, nc.nc2_etf_distance, nc.nc3, nc.nc4_ncc_agreement):
        assert abs(value) < 1e-8
    assert nc.mean_cosine == pytest.approx(-1.0 / 4.0, abs=1e-12)
    np.testing.assert_allclose(nc.cosines[~np.eye(5, dtype=bool)], -0.25, atol=1e-12)
    np.testing.assert_allclose(nc.class_mean_norms, 3.0, rtol=1e-12)
    assert nc.n_classes == 5 and nc.ncc_agreement == pytest.approx(1.0)
    # Torch inputs and a scaled classifier give the same answer.
    as_torch = [torch.tensor(a) for a in (features, labels, 2.0 * weight, 2.0 * bias)]
    again = collapse.neural_collapse(*as_torch)
    assert abs(again.nc3) < 1e-8 and again.nc4_ncc_agreement == 0.0


def test_noisy_features_give_positive_metrics_and_nc1_formula():
    rng = np.random.default_rng(0)
    features, labels, etf, _ = collapsed_set()
    features = features * rng.uniform(0.5, 1.5, size=(5, 1))[labels] + rng.normal(scale=1.5, size=features.shape)
    weight = etf + rng.normal(scale=0.5, size=etf.shape)
    nc = collapse.neural_collapse(features, labels, weight)
    for value in (nc.nc1, nc.nc2_equinorm, nc.nc2_equiangle, nc.nc2_etf_distance, nc.nc3):
        assert value > 1e-3
    # NC1 against the textbook formula tr(Sigma_W Sigma_B^+) / C with d x d matrices.
    means = np.stack([features[labels == c].mean(0) for c in range(5)])
    centred = means - means.mean(0)
    within = features - means[labels]
    sigma_w = within.T @ within / len(labels)
    sigma_b = centred.T @ centred / 5
    expected = np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / 5
    assert nc.nc1 == pytest.approx(expected, rel=1e-8)


def test_nc4_counts_disagreements():
    features = np.array([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [-0.9, -0.1]])
    labels = np.array([0, 0, 1, 1])
    weight = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert collapse.neural_collapse(features, labels, weight).nc4_ncc_agreement == 0.0
    # A bias that makes class 0 win everywhere disagrees with the nearest mean on half the points.
    assert collapse.neural_collapse(features, labels, weight, np.array([5.0, 0.0])).nc4_ncc_agreement == 0.5
    assert np.isnan(collapse.neural_collapse(features, labels).nc3)


def test_penultimate_features_hook_last_linear():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3))
    x = torch.randn(9, 4, generator=g)
    expected = model[:4](x).detach().numpy()
    np.testing.assert_allclose(collapse.penultimate_features(model, x), expected, rtol=1e-6)
    assert collapse.classifier_layer(model) is model[4]
    assert not model[4]._forward_hooks  # the hook is removed


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: collapse.neural_collapse(np.ones(4), [0, 1, 0, 1]), "features must be 2-D"),
        (lambda: collapse.neural_collapse(np.ones((4, 2)), [0, 1, 0]), "labels must be 1-D"),
        (lambda: collapse.neural_collapse(np.ones((4, 2)), [0, 0, 0, 0]), "at least 2 classes"),
        (lambda: collapse.neural_collapse(np.eye(4, 2), [0, 1, 0, 1], np.ones((3, 2))), "classifier_weight must"),
        (lambda: collapse.neural_collapse(np.eye(4, 2), [0, 1, 0, 1], np.ones((2, 2)), np.ones(3)), "classifier_bias"),
        (lambda: collapse.simplex_etf(1, 3), "n_classes must be"),
        (lambda: collapse.penultimate_features(nn.ReLU(), torch.ones(2, 2)), "must contain an nn.Linear"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_coincident_class_means_are_not_read_as_collapse():
    """Dead ReLUs (all features 0) or identical class means: NC1 and NC3 are undefined, not 0 (perfect collapse)."""
    from learnmech_core.phenomena.neural_collapse import _fall

    labels = np.repeat(np.arange(3), 4)
    dead = collapse.neural_collapse(np.zeros((12, 5)), labels, classifier_weight=np.ones((3, 5)))
    assert np.isnan(dead.nc1) and np.isnan(dead.nc3)
    assert dead.nc2_etf_distance == pytest.approx(0.5)  # cosines 0 against -1/(C-1) = -0.5: far from a simplex
    same_means = np.random.default_rng(0).standard_normal((12, 5))
    same_means -= np.stack([same_means[labels == c].mean(0) for c in range(3)])[labels]  # every class mean 0
    assert np.isnan(collapse.neural_collapse(same_means, labels).nc1)
    assert _fall(1.0, float("nan")) != _fall(1.0, float("nan"))  # NaN, so ">= 5x" fails
    assert _fall(1.0, 0.0) == float("inf") and _fall(2.0, 0.5) == 4.0
