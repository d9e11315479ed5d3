"""Gradient noise scale against a brute-force per-example autograd loop (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from learnmech_core import noise


def setup(loss: str):
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.7)
    model[0].bias.requires_grad_(False)  # frozen parameters are left out
    x = torch.randn(11, 5, generator=g, dtype=torch.float64)
    if loss == "mse":
        return model, nn.MSELoss(), x, torch.randn(11, 3, generator=g, dtype=torch.float64)
    return model, nn.CrossEntropyLoss(), x, torch.randint(0, 3, (11,), generator=g)


def brute_force(model, loss_fn, x, y) -> np.ndarray:
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        grads = torch.autograd.grad(loss_fn(model(x[i : i + 1]), y[i : i + 1]), params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]).numpy())
    return np.stack(rows)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_per_example_grads_and_noise_scale_match_brute_force(loss):
    model, loss_fn, x, y = setup(loss)
    expected = brute_force(model, loss_fn, x, y)
    got = noise.per_example_grads(model, loss_fn, x, y)
    assert got.shape == expected.shape == (11, 8 * 5 + 3 * 8 + 3)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)
    chunked = noise.per_example_grads(model, loss_fn, x, y, chunk_size=4)
    np.testing.assert_allclose(chunked, expected, rtol=1e-10, atol=1e-14)

    mean = expected.mean(axis=0)
    trace = np.sum((expected - mean) ** 2) / (11 - 1)
    # The mean per-example gradient is the full-batch gradient of a mean-reduced loss.
    full = torch.autograd.grad(loss_fn(model(x), y), [p for p in model.parameters() if p.requires_grad])
    np.testing.assert_allclose(np.concatenate([g.reshape(-1).numpy() for g in full]), mean, rtol=1e-10, atol=1e-14)
    for chunk in (None, 1, 4):
        plain = noise.noise_scale(model, loss_fn, x, y, chunk_size=chunk)
        assert plain.trace_sigma == pytest.approx(trace, rel=1e-6)
        assert plain.grad_sq_norm == pytest.approx(mean @ mean, rel=1e-6)
        assert plain.b_simple == pytest.approx(trace / (mean @ mean), rel=1e-6)
        assert plain.n == 11 and not plain.unbiased
        fair = noise.noise_scale(model, loss_fn, x, y, unbiased=True, chunk_size=chunk)
        unbiased_sq = mean @ mean - trace / 11
        assert fair.grad_sq_norm == pytest.approx(unbiased_sq, rel=1e-6)
        assert fair.b_simple == (pytest.approx(trace / unbiased_sq, rel=1e-6) if unbiased_sq > 0 else float("inf"))


def test_noise_scale_is_zero_for_identical_examples():
    model, loss_fn, x, y = setup("mse")
    result = noise.noise_scale(model, loss_fn, x[:1].repeat(6, 1), y[:1].repeat(6, 1))
    assert result.trace_sigma == pytest.approx(0.0, abs=1e-20) and result.b_simple == pytest.approx(0.0, abs=1e-12)


def test_finite_population_estimate_is_exactly_unbiased_over_all_subsets():
    """Averaged over every batch of 3 drawn without replacement from 8 examples, the estimate is |G|^2 exactly."""
    import itertools

    model, loss_fn, x, y = setup("ce")
    x, y = x[:8], y[:8]
    grads = brute_force(model, loss_fn, x, y)
    exact = grads.mean(axis=0) @ grads.mean(axis=0)
    estimates = [noise.noise_scale(model, loss_fn, x[list(s)], y[list(s)], unbiased=True, population=8).grad_sq_norm
                 for s in itertools.combinations(range(8), 3)]
    assert np.mean(estimates) == pytest.approx(exact, rel=1e-10)
    infinite = [noise.noise_scale(model, loss_fn, x[list(s)], y[list(s)], unbiased=True).grad_sq_norm
                for s in itertools.combinations(range(8), 3)]
    assert np.mean(infinite) < exact  # the infinite-population correction over-corrects a finite set
    whole = noise.noise_scale(model, loss_fn, x, y, unbiased=True, population=8)
    assert whole.grad_sq_norm == pytest.approx(exact, rel=1e-10)  # the whole set: no correction
    with pytest.raises(ValueError, match="population must be an integer at least the batch size 8"):
        noise.noise_scale(model, loss_fn, x, y, unbiased=True, population=5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"targets": torch.zeros(3, 3)}, "targets must be a tensor with the batch size of inputs"),
        ({"inputs": torch.zeros(1, 5, dtype=torch.float64), "targets": torch.zeros(1, 3)}, "at least 2 examples"),
        ({"chunk_size": 0}, "chunk_size must be"),
        ({"model": "net"}, "model must be a torch.nn.Module"),
    ],
)
def test_bad_inputs(kwargs, message):
    model, loss_fn, x, y = setup("mse")
    args = {"model": model, "loss_fn": loss_fn, "inputs": x, "targets": y} | kwargs
    with pytest.raises(ValueError, match=message):
        noise.noise_scale(**args)
