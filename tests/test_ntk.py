"""Empirical NTK against an explicit autograd Jacobian; kernel distance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from learnmech_core import ntk


def small_model(n_out: int = 3) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.GELU(), nn.Linear(5, n_out)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model


def explicit_jacobian(model: nn.Module, inputs: torch.Tensor, names: list[str] | None = None) -> np.ndarray:
    """Rows (example i, output k) of d f_k(x_i) / d theta, by one autograd call each."""
    params = [p for n, p in model.named_parameters() if names is None or n in names]
    rows = []
    for x in inputs:
        out = model(x.unsqueeze(0)).reshape(-1)
        for k in range(out.numel()):
            grads = torch.autograd.grad(out[k], params, retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]).numpy())
    return np.stack(rows)


def test_empirical_ntk_equals_explicit_jacobian_contraction():
    model = small_model(3)
    x = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jac = explicit_jacobian(model, x)  # (7 * 3, P), example-major
    per_output = jac @ jac.T
    traced = np.einsum("iojo->ij", per_output.reshape(7, 3, 7, 3))
    np.testing.assert_allclose(ntk.empirical_ntk(model, x), traced, rtol=1e-10)
    np.testing.assert_allclose(ntk.empirical_ntk(model, x, per_output=True), per_output, rtol=1e-10, atol=1e-12)


def test_empirical_ntk_blocks_and_recomputation_agree():
    model = small_model(2)
    x = torch.randn(9, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    full = ntk.empirical_ntk(model, x)
    np.testing.assert_allclose(ntk.empirical_ntk(model, x, chunk_size=4), full, rtol=1e-12)
    np.testing.assert_allclose(ntk.empirical_ntk(model, x, max_bytes=1), full, rtol=1e-12)  # one example a block
    np.testing.assert_allclose(
        ntk.empirical_ntk(model, x, per_output=True, max_bytes=1),
        ntk.empirical_ntk(model, x, per_output=True),
        rtol=1e-12,
    )


def test_empirical_ntk_params_subset_and_point():
    model = small_model(1)
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    names = ["4.weight", "4.bias"]
    params = dict(model.named_parameters())
    jac = explicit_jacobian(model, x, names)
    np.testing.assert_allclose(
        ntk.empirical_ntk(model, x, params={n: params[n] for n in names}), jac @ jac.T, rtol=1e-10
    )
    # The last layer's NTK does not depend on its own weights: any value gives the same kernel.
    moved = {n: params[n] + 1.0 for n in names}
    np.testing.assert_allclose(ntk.empirical_ntk(model, x, params=moved), jac @ jac.T, rtol=1e-10)
    assert ntk.empirical_ntk(model, x).shape == (5, 5)


def test_ntk_eigenvalues_descending_and_nonnegative():
    model = small_model(2)
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    kernel = ntk.empirical_ntk(model, x)
    values = ntk.ntk_eigenvalues(kernel)
    assert np.all(np.diff(values) <= 0) and values[-1] > -1e-10
    assert values.sum() == pytest.approx(np.trace(kernel))


def test_kernel_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    k0 = a @ a.T
    assert ntk.kernel_distance(k0, 3.5 * k0) == pytest.approx(0.0, abs=1e-14)
    b = rng.normal(size=(5, 5))
    k1 = b @ b.T
    expected = 1 - np.trace(k0 @ k1) / (np.linalg.norm(k0) * np.linalg.norm(k1))
    assert ntk.kernel_distance(k0, k1) == pytest.approx(expected, rel=1e-12)
    assert ntk.kernel_distance(torch.tensor(k0), torch.tensor(k1)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ntk.kernel_distance(np.eye(3), np.eye(4)), "kernel_b must have the shape"),
        (lambda: ntk.kernel_distance(np.ones(3), np.eye(3)), "kernel_a must be a non-empty square"),
        (lambda: ntk.kernel_distance(np.zeros((2, 2)), np.eye(2)), "must be non-zero"),
        (lambda: ntk.ntk_eigenvalues(np.ones((2, 3))), "kernel must be a non-empty square"),
        (lambda: ntk.empirical_ntk("model", torch.ones(2, 4)), "model must be a torch.nn.Module"),
        (lambda: ntk.empirical_ntk(small_model(), torch.ones(2, 4), params={"no": torch.ones(1)}), "params has names"),
        (lambda: ntk.empirical_ntk(small_model(), torch.ones(2, 4), chunk_size=0), "chunk_size must be"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_default_kernel_is_the_one_gd_follows_under_per_layer_rates():
    """muP away from its base width: Theta = J D J^T (D the per-layer lr multipliers) predicts a GD step."""
    from learnmech_core import ModelSpec, OptimSpec, RunSpec, models
    from learnmech_core.data import DataInfo
    from learnmech_core.train import loss_function, make_optimizer

    spec = RunSpec(model=ModelSpec(arch="mlp", width=8, base_width=2, depth=2, activation="tanh", param="mup"),
                   optim=OptimSpec(name="gd", lr=1e-4, loss="mse"))
    model = models.build(spec.model, DataInfo("own", "regression", "vector", (4,), 2, None), "gd",
                         torch.Generator().manual_seed(0), dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 2, generator=g, dtype=torch.float64)
    mults = ntk.model_lr_multipliers(model)
    assert set(mults.values()) == {4.0, 1.0, 0.25}
    jac = explicit_jacobian(model, x)
    d = np.concatenate([np.full(p.numel(), mults[n]) for n, p in model.named_parameters()])
    per_output = ntk.empirical_ntk(model, x, per_output=True)
    np.testing.assert_allclose(per_output, (jac * d) @ jac.T, rtol=1e-10)
    np.testing.assert_allclose(ntk.empirical_ntk(model, x, lr_mults={}, per_output=True), jac @ jac.T, rtol=1e-10)
    # one GD step of the trainer's optimiser moves the outputs by -eta Theta dL/df (to first order in eta)
    loss_fn = loss_function("mse")
    before = model(x).detach()
    residual = ((before - y) / len(x)).reshape(-1)
    opt = make_optimizer(spec, model)
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()
    moved = (model(x).detach() - before).reshape(-1).numpy()
    predicted = -1e-4 * per_output @ residual.numpy()
    np.testing.assert_allclose(moved, predicted, rtol=1e-3, atol=1e-12)
    unweighted = -1e-4 * (jac @ jac.T) @ residual.numpy()
    assert np.abs(moved - unweighted).max() > 100 * np.abs(moved - predicted).max()


def test_lr_mults_are_checked():
    model, x = small_model(), torch.ones(2, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="lr_mults"):
        ntk.empirical_ntk(model, x, lr_mults={"0.weight": -1.0})
    with pytest.raises(ValueError, match="lr_mults"):
        ntk.empirical_ntk(model, x, lr_mults=[1.0])
