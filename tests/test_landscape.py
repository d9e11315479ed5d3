"""Loss slices against closed-form quadratics; filter normalisation; the model is left untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from learnmech_core import landscape

MSE = nn.MSELoss()


def linear_problem():
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(5, 2).double()
    x = torch.randn(20, 5, generator=g, dtype=torch.float64)
    y = torch.randn(20, 2, generator=g, dtype=torch.float64)
    return model, nn.MSELoss(), x, y, g


def residual_and_change(model, x, y, direction):
    """r = f(x) - y and s = d f(x) / d alpha along a flat (weight, bias) direction."""
    dw, db = direction[:10].reshape(2, 5), direction[10:]
    with torch.no_grad():
        return (model(x) - y).numpy(), (x @ dw.T + db).numpy()


def test_slice_1d_of_linear_mse_is_exact_quadratic():
    model, loss_fn, x, y, g = linear_problem()
    d = torch.randn(12, generator=g, dtype=torch.float64)
    alphas = np.linspace(-3.0, 3.0, 13)
    table = landscape.loss_slice_1d(model, loss_fn, x, y, d, alphas)
    r, s = residual_and_change(model, x, y, d)
    expected = np.mean(r**2) + 2 * alphas * np.mean(r * s) + alphas**2 * np.mean(s**2)
    assert list(table.columns) == ["alpha", "loss"]
    np.testing.assert_allclose(table["alpha"], alphas)
    np.testing.assert_allclose(table["loss"], expected, rtol=1e-10, atol=1e-12)


def test_slice_2d_of_linear_mse_is_exact_quadratic():
    model, loss_fn, x, y, g = linear_problem()
    d1, d2 = torch.randn(12, generator=g, dtype=torch.float64), torch.randn(12, generator=g, dtype=torch.float64)
    alphas, betas = np.array([-1.0, 0.0, 0.5, 2.0]), np.array([-0.5, 1.0, 1.5])
    table = landscape.loss_slice_2d(model, loss_fn, x, y, d1, d2, alphas, betas)
    r, s1 = residual_and_change(model, x, y, d1)
    _, s2 = residual_and_change(model, x, y, d2)
    a, b = np.meshgrid(alphas, betas, indexing="ij")
    expected = [np.mean((r + ai * s1 + bi * s2) ** 2) for ai, bi in zip(a.ravel(), b.ravel(), strict=True)]
    assert list(table.columns) == ["alpha", "beta", "loss"] and len(table) == 12
    np.testing.assert_allclose(table["alpha"], a.ravel())
    np.testing.assert_allclose(table["beta"], b.ravel())
    np.testing.assert_allclose(table["loss"], expected, rtol=1e-10, atol=1e-12)


def test_numpy_and_float32_directions_are_accepted():
    model, loss_fn, x, y, g = linear_problem()
    d = torch.randn(12, generator=g, dtype=torch.float64)
    expected = landscape.loss_slice_1d(model, loss_fn, x, y, d, [0.5])["loss"]
    np.testing.assert_allclose(landscape.loss_slice_1d(model, loss_fn, x, y, d.numpy(), [0.5])["loss"], expected)
    single = landscape.loss_slice_1d(model, loss_fn, x, y, d.float(), [0.5])["loss"]
    np.testing.assert_allclose(single, expected, rtol=1e-6)


def split_by_parameter(model: nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    names = [n for n, _ in model.named_parameters()]
    return dict(zip(names, torch.split(flat, [p.numel() for p in model.parameters()]), strict=True))


def test_random_direction_filter_normalisation():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 3))
    d = landscape.random_direction(model, torch.Generator().manual_seed(0))
    parts = split_by_parameter(model, d)
    for name in ("0.weight", "3.weight"):
        weight = dict(model.named_parameters())[name].detach()
        rows = parts[name].reshape(weight.shape[0], -1)
        torch.testing.assert_close(rows.norm(dim=1), weight.reshape(weight.shape[0], -1).norm(dim=1))
    for name in ("0.bias", "1.weight", "1.bias", "3.bias"):
        assert torch.count_nonzero(parts[name]) == 0
    # The same seed gives the same direction; normalising 1-D parameters keeps their norms.
    torch.testing.assert_close(d, landscape.random_direction(model, torch.Generator().manual_seed(0)))
    d1 = landscape.random_direction(model, torch.Generator().manual_seed(0), one_d="normalize")
    bias = split_by_parameter(model, d1)["3.bias"]
    torch.testing.assert_close(bias.norm(), model[3].bias.detach().norm())
    plain = landscape.random_direction(model, torch.Generator().manual_seed(1), filter_normalize=False)
    assert plain.norm().item() == pytest.approx(1.0)


def test_model_is_untouched_and_interpolation_endpoints():
    g = torch.Generator().manual_seed(3)
    make = lambda: nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2)).double()  # noqa: E731
    model_a, model_b = make(), make()
    with torch.no_grad():
        for p in list(model_a.parameters()) + list(model_b.parameters()):
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(16, 4, generator=g, dtype=torch.float64)
    y = torch.randn(16, 2, generator=g, dtype=torch.float64)
    loss_fn = nn.MSELoss()
    # train mode: batch-norm would update its running statistics in a plain forward pass
    before = {k: v.clone() for k, v in model_a.state_dict().items()}
    d = landscape.random_direction(model_a, torch.Generator().manual_seed(0))
    landscape.loss_slice_1d(model_a, loss_fn, x, y, d, [-1.0, 1.0])
    landscape.loss_slice_2d(model_a, loss_fn, x, y, d, d.flip(0), [0.3], [0.7])
    table = landscape.interpolate(model_a, model_a.state_dict(), model_b.state_dict(), loss_fn, x, y, [0.0, 0.25, 1.0])
    for k, v in model_a.state_dict().items():
        assert torch.equal(v, before[k]), k
    model_a.eval(), model_b.eval()
    table = landscape.interpolate(model_a, model_a.state_dict(), model_b.state_dict(), loss_fn, x, y, [0.0, 0.5, 1.0])
    with torch.no_grad():
        assert table["loss"].iloc[0] == float(loss_fn(model_a(x), y))
        assert table["loss"].iloc[2] == float(loss_fn(model_b(x), y))
    assert list(table.columns) == ["t", "loss"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x, y: landscape.loss_slice_1d(m, MSE, x, y, torch.ones(5), [0]), "flat vector of length 12"),
        (lambda m, x, y: landscape.loss_slice_1d(m, MSE, x, y, torch.ones(12), [[0.0]]), "alphas must be"),
        (lambda m, x, y: landscape.loss_slice_2d(m, MSE, x, y, torch.ones(12), torch.ones(3), [0], [0]), "d2 must be"),
        (lambda m, x, y: landscape.random_direction(m, 0), "generator must be"),
        (lambda m, x, y: landscape.random_direction(m, torch.Generator(), one_d="keep"), "one_d must be one of"),
        (lambda m, x, y: landscape.interpolate(m, {}, m.state_dict(), MSE, x, y, [0.0]), "state_a must hold"),
    ],
)
def test_bad_inputs(call, message):
    model, _, x, y, _ = linear_problem()
    with pytest.raises(ValueError, match=message):
        call(model, x, y)
