"""The sharpness an optimiser's stability threshold refers to: its own geometry (lr multipliers, Adam's P, decay).

Checked against what the optimisers do: torch's Adam step is exactly -lr P^-1 m with group multipliers
folded into P; heavy ball on a quadratic is stable exactly below (2 + 2 mu) / eta; GD under muP away
from its base width is stable exactly while the reported ratio precond_sharpness / (2/eta) is below 1.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, models
from learnmech_core import curvature as C
from learnmech_core.data import DataInfo
from learnmech_core.probes import PrecondSharpnessProbe, SharpnessProbe
from learnmech_core.train import loss_function, make_optimizer
from learnmech_core.universality import stability_threshold


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def _batch(n: int = 30, d: int = 5, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _groups(model: nn.Module, lr: float, mults=(1.0, 4.0), **extra) -> list[dict]:
    """Two param groups (first layer, read-out) with the trainer's convention: group lr = lr * lr_mult."""
    return [{"params": list(model[0].parameters()), "lr": lr * mults[0], "lr_mult": mults[0], **extra},
            {"params": list(model[2].parameters()), "lr": lr * mults[1], "lr_mult": mults[1], **extra}]


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_torch_adam_step_is_minus_lr_p_inverse_m_with_group_multipliers(cls):
    model, (x, y) = _mlp(), _batch()
    lr = 0.01
    opt = cls(_groups(model, lr), betas=(0.9, 0.99), eps=1e-6, weight_decay=0.0)
    params = list(model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(4):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        before = torch.cat([p.detach().reshape(-1) for p in params])
        opt.step()
        after = torch.cat([p.detach().reshape(-1) for p in params])
        m = torch.cat([opt.state[p]["exp_avg"].reshape(-1) for p in params])
        P = C.adam_preconditioner(opt, params)
        torch.testing.assert_close(after - before, -lr * m / P, rtol=1e-10, atol=1e-14)
        # the same with bias-corrected moments: -lr * m_hat / P' with P' = (sqrt(v_hat) + eps) / lr_mult
        t = float(opt.state[params[0]]["step"])
        P_hat = C.adam_preconditioner(opt, params, momentum_correction=False)
        torch.testing.assert_close(after - before, -lr * (m / (1 - 0.9**t)) / P_hat, rtol=1e-10, atol=1e-14)
    D = C.lr_multipliers(opt, params)
    assert set(D.tolist()) == {1.0, 4.0}


def _dense_optimizer_sharpness(H: torch.Tensor, P: torch.Tensor, decay: torch.Tensor) -> float:
    return float(torch.linalg.eigvals((H + torch.diag(decay)) / P[:, None]).real.max())  # P^-1 (H + wd I)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw"])
def test_optimizer_sharpness_matches_the_dense_preconditioned_hessian(name):
    model, (x, y) = _mlp(), _batch()
    loss_fn = nn.CrossEntropyLoss()
    params = list(model.parameters())
    if name in ("sgd", "momentum"):
        opt = torch.optim.SGD(_groups(model, 0.1), momentum=0.9 if name == "momentum" else 0.0, weight_decay=0.01)
    else:
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        opt = cls(_groups(model, 0.01), betas=(0.9, 0.99), eps=1e-6, weight_decay=0.01)
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
        opt.zero_grad(set_to_none=True)
    H = C.full_hessian(model, loss_fn, x, y)
    P = C.optimizer_preconditioner(opt, params).double()
    decay = C.coupled_weight_decay(opt, params)
    assert float(decay.max()) == (0.0 if name == "adamw" else 0.01)
    if name in ("sgd", "momentum"):
        torch.testing.assert_close(P, 1 / C.lr_multipliers(opt, params))
    want = _dense_optimizer_sharpness(H, P, decay)
    res = C.optimizer_top_eigenvalues(model, loss_fn, x, y, opt, tol=1e-10)
    assert res.converged and abs(res.values[0] - want) / want < 1e-8
    assert C.preconditioned_sharpness(model, loss_fn, x, y, opt, tol=1e-10) == pytest.approx(want, rel=1e-8)
    raw = float(torch.linalg.eigvalsh(H)[-1])
    assert abs(raw - want) / want > 0.1  # the geometry matters here: the raw sharpness is another number


def test_other_optimizers_are_refused_by_name():
    model, (x, y) = _mlp(), _batch()
    with pytest.raises(ValueError, match="optimizer must be"):
        C.optimizer_top_eigenvalues(model, nn.CrossEntropyLoss(), x, y, torch.optim.RMSprop(model.parameters()))


def _iterate(step, theta0: torch.Tensor, steps: int) -> float:
    """|theta_T| / |theta_0| of an iteration started at theta0 (the minimum is at 0)."""
    theta = theta0.clone()
    for _ in range(steps):
        theta = step(theta)
        if not torch.isfinite(theta).all():
            return math.inf
    return float(theta.norm() / theta0.norm())


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_heavy_ball_on_a_quadratic_is_stable_exactly_below_its_threshold(momentum):
    g = torch.Generator().manual_seed(3)
    X = torch.randn(40, 6, generator=g, dtype=torch.float64)
    H = X.T @ X / 40  # loss 0.5 theta^T H theta: a quadratic with its minimum at 0
    sharpness = float(torch.linalg.eigvalsh(H)[-1])
    spec = RunSpec(optim=OptimSpec(name="momentum" if momentum else "gd", lr=0.1, momentum=momentum or 0.9))
    threshold_times_lr = stability_threshold(spec) * 0.1  # 2 + 2 mu (2 for GD)
    theta0 = torch.randn(6, generator=g, dtype=torch.float64)
    for factor, stable in ((0.97, True), (1.03, False)):
        lr = factor * threshold_times_lr / sharpness  # reported ratio sharpness / threshold = factor
        p = nn.Parameter(theta0.clone())
        opt = torch.optim.SGD([p], lr=lr, momentum=momentum)

        def step(_, p=p, opt=opt):
            opt.zero_grad()
            (0.5 * p @ H @ p).backward()
            opt.step()
            return p.detach()

        growth = _iterate(step, theta0, 1500)
        assert (growth < 1e-3) if stable else (growth > 1e3), (momentum, factor, growth)


def _mup_at_a_minimum(width: int = 8, base: int = 2) -> tuple:
    """A muP linear 4-w-3 network placed exactly at a zero-loss minimum of a realisable regression."""
    spec = RunSpec(model=ModelSpec(arch="mlp", width=width, base_width=base, depth=1, activation="linear",
                                   param="mup", bias=False),
                   data=DataSpec(name="teacher_student", n_train=32, n_test=0),
                   optim=OptimSpec(name="gd", lr=0.1, steps=1, loss="mse"),
                   probes=ProbeSpec(sharpness_every=1, sharpness_tol=1e-8), dtype="float64")
    info = DataInfo("own", "regression", "vector", (4,), 3, None)
    model = models.build(spec.model, info, "gd", torch.Generator().manual_seed(0), dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=g, dtype=torch.float64)
    teacher = torch.randn(3, 4, generator=g, dtype=torch.float64)
    first, readout = model.layers
    with torch.no_grad():  # read-out = teacher W1^+ / multiplier: the network computes teacher @ x exactly
        readout.weight.copy_(teacher @ torch.linalg.pinv(first.weight * first.mult) / readout.mult)
    y = x @ teacher.T
    return spec, model, x, y


def test_mup_gd_is_stable_exactly_while_the_reported_ratio_is_below_one():
    spec, model, x, y = _mup_at_a_minimum()
    loss_fn = loss_function("mse")
    assert float(loss_fn(model(x), y).detach()) < 1e-20
    lr_mults = {g["lr_mult"] for g in models.param_groups(model)}
    assert lr_mults == {4.0, 0.25}  # muP at width 8, base 2: input x4, read-out x1/4
    optimizer = make_optimizer(spec, model)
    ctx = SimpleNamespace(model=model, loss_fn=loss_fn, inputs=x, targets=y, optimizer=optimizer, state={},
                          generator=torch.Generator().manual_seed(2))
    row, _ = SharpnessProbe(every=1, tol=1e-8).measure(ctx)
    assert row["sharpness_converged"] and row["precond_sharpness_converged"]
    assert PrecondSharpnessProbe(every=1, tol=1e-8).measure(ctx)[0]["precond_sharpness"] == pytest.approx(
        row["precond_sharpness"], rel=1e-6)
    critical = 2 / row["precond_sharpness"]  # the lr at which the reported ratio precond_sharpness / (2/lr) is 1
    assert abs(2 / row["sharpness"] - critical) / critical > 0.3  # 2 / lambda_max(H) would be far off
    params = list(model.parameters())
    minimum = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(3)
    kick = [1e-6 * torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    for factor, stable in ((0.97, True), (1.03, False)):
        lr = factor * critical
        run_spec = spec.replace(**{"optim.lr": lr})
        ratio = row["precond_sharpness"] / stability_threshold(run_spec)
        assert ratio == pytest.approx(factor, rel=1e-6)
        with torch.no_grad():
            for p, m, k in zip(params, minimum, kick, strict=True):
                p.copy_(m + k)
        opt = make_optimizer(run_spec, model)  # the trainer's optimiser: one group per lr multiplier
        start = float(loss_fn(model(x), y).detach())
        for _ in range(200):  # long enough to grow 1e3-fold, short enough to stay in the linear regime
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        end = float(loss_fn(model(x), y).detach())
        assert (end < start) if stable else (end > 1e3 * start), (factor, start, end)
