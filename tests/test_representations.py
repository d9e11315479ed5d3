"""Linear CKA against direct Gram-matrix HSIC formulas; invariances; layer features from hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from learnmech_core import representations as rep


def hsic_biased(k: np.ndarray, m: np.ndarray) -> float:
    n = k.shape[0]
    h = np.eye(n) - 1.0 / n
    return np.trace(k @ h @ m @ h) / (n - 1) ** 2


def hsic_unbiased(k: np.ndarray, m: np.ndarray) -> float:
    """Song et al. (2012) unbiased HSIC, written with Gram matrices."""
    n = k.shape[0]
    k, m = k - np.diag(np.diag(k)), m - np.diag(np.diag(m))
    one = np.ones(n)
    value = (
        np.trace(k @ m)
        + (one @ k @ one) * (one @ m @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ k @ m @ one)
    )
    return value / (n * (n - 3))


def cka_gram(x: np.ndarray, y: np.ndarray, hsic) -> float:
    k, m = x @ x.T, y @ y.T
    return hsic(k, m) / np.sqrt(hsic(k, k) * hsic(m, m))


@pytest.mark.parametrize("shape_y", [(40, 7), (40, 90)])  # feature form and Gram form
def test_linear_cka_matches_gram_hsic(shape_y):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 12)) + 3.0
    y = x[:, :5] @ rng.normal(size=(5, shape_y[1])) + rng.normal(size=shape_y)
    assert rep.linear_cka(x, y) == pytest.approx(cka_gram(x, y, hsic_biased), rel=1e-10)
    centred_x, centred_y = x - x.mean(0), y - y.mean(0)
    expected = cka_gram(centred_x, centred_y, hsic_unbiased)
    assert rep.linear_cka(x, y, debiased=True) == pytest.approx(expected, rel=1e-10)


def test_linear_cka_invariances():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    for debiased in (False, True):
        assert rep.linear_cka(x, x @ q, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
        assert rep.linear_cka(x, 7.5 * x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
        assert rep.linear_cka(x, x + 4.0, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    assert rep.linear_cka(torch.tensor(x), torch.tensor(x @ q)) == pytest.approx(1.0, abs=1e-12)


def test_debiased_cka_near_zero_for_independent_features():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(400, 60)), rng.normal(size=(400, 60))
    biased, debiased = rep.linear_cka(x, y), rep.linear_cka(x, y, debiased=True)
    assert abs(debiased) < 0.02
    assert biased > 0.1  # the plain estimator is biased upward at p / n = 0.15


def test_layer_features_in_call_order():
    g = torch.Generator().manual_seed(0)
    shared = nn.Linear(5, 5)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(3, 5)
            self.act = nn.ReLU()
            self.shared = shared
            self.out = nn.Linear(5, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.inp(x))
            h = torch.tanh(self.shared(self.shared(h)))
            return self.out(h)

    net = Net()
    x = torch.randn(8, 3, generator=g)
    feats = rep.layer_features(net, x)
    assert list(feats) == ["inp", "act", "shared", "shared#2", "out"]
    np.testing.assert_allclose(feats["act"], torch.relu(net.inp(x)).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(feats["out"], net(x).detach().numpy(), rtol=1e-6)
    assert all(v.shape[0] == 8 for v in feats.values())
    assert list(rep.layer_features(net, x, names=["out", "act"])) == ["act", "out"]
    assert not any(m._forward_hooks for m in net.modules())

    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.Flatten(), nn.Linear(8, 1))
    shapes = {k: v.shape for k, v in rep.layer_features(conv, torch.randn(4, 1, 4, 4, generator=g)).items()}
    assert shapes == {"0": (4, 8), "1": (4, 8), "3": (4, 1)}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: rep.linear_cka(np.ones(5), np.ones((5, 2))), r"features_x must be 2-D"),
        (lambda: rep.linear_cka(np.ones((5, 2)), np.ones((4, 2))), "features_y must have as many rows"),
        (lambda: rep.linear_cka(np.ones((3, 2)), np.ones((3, 2)), debiased=True), "at least 4 rows"),
        (lambda: rep.linear_cka(np.full((3, 2), np.nan), np.ones((3, 2))), "features_x must be finite"),
        (lambda: rep.layer_features(nn.ReLU(), torch.ones(2, 2), names=["x"]), "names has modules"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
