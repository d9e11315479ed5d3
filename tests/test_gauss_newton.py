"""Gauss-Newton / residual split against dense matrices of tiny models; batched products equal full-batch ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from learnmech_core import curvature
from learnmech_core.gauss_newton import (
    DatasetOperator,
    batches_of,
    curvature_split,
    full_gauss_newton,
    gauss_newton_product,
)
from learnmech_core.train import loss_function


def problem(loss: str, seed: int = 0, n: int = 15):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randn(n, 3, generator=g, dtype=torch.float64) if loss == "mse" else torch.randint(0, 3, (n,), generator=g)
    return model, loss_function(loss), x, y


def flat_function(model, x):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def f(theta):
        pieces = torch.split(theta, sizes)
        return functional_call(model, {n: c.reshape(s) for n, c, s in zip(names, pieces, shapes, strict=True)}, (x,))

    return f, torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def reference_gauss_newton(model, loss, x, y):
    """J^T H_l J written out: MSE (0.5 sum, mean over N) has H_l = I / N; softmax CE has (diag p - p p^T) / N."""
    f, theta = flat_function(model, x)
    jac = torch.autograd.functional.jacobian(f, theta)  # (N, C, n)
    out = f(theta).detach()
    n = len(x)
    g = torch.zeros(theta.numel(), theta.numel(), dtype=torch.float64)
    for i in range(n):
        if loss == "mse":
            h_l = torch.eye(out.shape[1], dtype=torch.float64)
        else:
            p = torch.softmax(out[i], 0)
            h_l = torch.diag(p) - torch.outer(p, p)
        g += jac[i].T @ h_l @ jac[i] / n
    return g


def reference_residual(model, loss_fn, x, y):
    """R = sum_i,c (dl/df_c) d^2 f_c / dtheta^2: the Hessian of theta -> <stop_grad(dL/df), f(theta)>."""
    f, theta = flat_function(model, x)
    out = f(theta).detach().requires_grad_(True)
    (dl_df,) = torch.autograd.grad(loss_fn(out, y), out)
    return hessian(lambda t: (dl_df * f(t)).sum())(theta)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_gauss_newton_plus_residual_is_the_dense_hessian(loss):
    model, loss_fn, x, y = problem(loss)
    h = curvature.full_hessian(model, loss_fn, x, y)
    g = full_gauss_newton(model, loss_fn, x, y)
    torch.testing.assert_close(g, reference_gauss_newton(model, loss, x, y), rtol=1e-10, atol=1e-12)
    r = reference_residual(model, loss_fn, x, y)
    torch.testing.assert_close(g + r, h, rtol=1e-10, atol=1e-12)
    assert torch.linalg.eigvalsh(g).min() > -1e-12  # G is positive semi-definite for a convex loss
    assert torch.linalg.norm(r) > 1e-3 * torch.linalg.norm(h)  # a tanh net has a real residual
    v = torch.randn(h.shape[0], generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(gauss_newton_product(model, loss_fn, x, y, v), g @ v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(DatasetOperator(model, loss_fn, [(x, y)], "residual")(v), r @ v, rtol=1e-10,
                               atol=1e-12)


def test_linear_model_with_mse_has_no_residual():
    model, loss_fn, x, y = problem("mse")
    linear = model[0].double()
    y = y[:, :4] if y.shape[1] >= 4 else torch.cat([y, y[:, :1]], 1)
    h = curvature.full_hessian(linear, loss_fn, x, y)
    torch.testing.assert_close(full_gauss_newton(linear, loss_fn, x, y), h, rtol=1e-12, atol=1e-14)
    v = torch.randn(h.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    res = DatasetOperator(linear, loss_fn, batches_of(x, y, 4), "residual")(v)
    assert torch.linalg.norm(res) < 1e-12 * torch.linalg.norm(h @ v)


@pytest.mark.parametrize("kind", ["hessian", "gauss_newton", "residual"])
def test_batched_products_equal_the_full_batch_product(kind):
    model, loss_fn, x, y = problem("ce", seed=2, n=18)
    full = {"hessian": curvature.full_hessian(model, loss_fn, x, y),
            "gauss_newton": full_gauss_newton(model, loss_fn, x, y)}
    full["residual"] = full["hessian"] - full["gauss_newton"]
    v = torch.randn(full["hessian"].shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    uneven = [(x[:7], y[:7]), (x[7:12], y[7:12]), (x[12:], y[12:])]  # 7, 5 and 6 examples: weights 7/18, 5/18, 6/18
    for batches in (uneven, batches_of(x, y, 5), batches_of(x, y)):
        op = DatasetOperator(model, loss_fn, batches, kind)
        torch.testing.assert_close(op(v), full[kind] @ v, rtol=1e-10, atol=1e-12)
    # the full-batch HVP of the curvature module itself
    if kind == "hessian":
        torch.testing.assert_close(DatasetOperator(model, loss_fn, uneven)(v),
                                   curvature.hvp_operator(model, loss_fn, x, y)(v), rtol=1e-10, atol=1e-12)


def test_curvature_split_matches_dense_eigenvalues():
    model, loss_fn, x, y = problem("ce", seed=4, n=20)
    h = curvature.full_hessian(model, loss_fn, x, y)
    g = full_gauss_newton(model, loss_fn, x, y)
    split = curvature_split(model, loss_fn, x, y, k=3, batch_size=6, tol=1e-8)
    eh, vh = torch.linalg.eigh(h)
    np.testing.assert_allclose(split.hessian, eh.flip(0)[:3].numpy(), rtol=1e-6)
    np.testing.assert_allclose(split.gauss_newton, torch.linalg.eigvalsh(g).flip(0)[:3].numpy(), rtol=1e-6)
    er = torch.linalg.eigvalsh(h - g).numpy()
    top_r = er[np.argsort(-np.abs(er))[:3]]
    np.testing.assert_allclose(np.sort(split.residual), np.sort(top_r), rtol=1e-6)
    top = vh[:, -3:].flip(1)
    share = np.array([float(top[:, i] @ g @ top[:, i]) for i in range(3)]) / eh.flip(0)[:3].numpy()
    np.testing.assert_allclose(split.gauss_newton_share, share, rtol=1e-5)
    assert split.n_batches == 4 and split.n_examples == 20 and split.converged
    assert list(split.table().columns) == ["rank", "hessian", "gauss_newton", "residual", "gauss_newton_share"]


def test_bad_arguments_are_named():
    model, loss_fn, x, y = problem("mse")
    with pytest.raises(ValueError, match="kind must be one of"):
        DatasetOperator(model, loss_fn, [(x, y)], "fisher")
    with pytest.raises(ValueError, match="batch_size must be"):
        batches_of(x, y, -1)
    with pytest.raises(ValueError, match="v must be a 1-D tensor of length"):
        DatasetOperator(model, loss_fn, [(x, y)])(torch.zeros(3))
