"""The training loop: closed-form GD, a hand-written reference loop, divergence, determinism, stops."""

import math

import numpy as np
import pytest
import torch

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, train
from learnmech_core.data import linear_lowrank_map, load
from learnmech_core.train import build_model, loss_function, lr_factor, make_optimizer

LINEAR = RunSpec(model=ModelSpec(arch="deep_linear", depth=1),
                 data=DataSpec(name="linear_lowrank", dim=5, singular_values=(2.0, 1.0), n_train=64, n_test=16),
                 optim=OptimSpec(name="gd", lr=0.3, steps=25, loss="mse", eval_every=0), dtype="float64")


def test_gd_on_linear_regression_matches_the_exact_recursion_and_closed_form():
    run = train(LINEAR)
    assert run.status == "ok" and list(run.history["step"]) == list(range(26))
    model, data = build_model(LINEAR)
    x, y = data.x_train.double(), data.y_train.double()
    w = model.layers[0].weight.detach().double().clone()
    sxx, syx = x.T @ x / len(x), y.T @ x / len(x)
    expected = []
    for _ in range(26):
        expected.append(0.5 * ((x @ w.T - y) ** 2).sum(1).mean().item())
        w = w - 0.3 * (w @ sxx - syx)
    np.testing.assert_allclose(run.history["loss"], expected, rtol=1e-10)
    # closed form with whitened inputs (Sigma_xx = I): L_t = 0.5 (1 - eta)^(2t) ||W_0 - W*||_F^2
    w0 = model.layers[0].weight.detach().double()
    w_star = torch.as_tensor(linear_lowrank_map(LINEAR.data))
    closed = [0.5 * (1 - 0.3) ** (2 * t) * ((w0 - w_star) ** 2).sum().item() for t in range(26)]
    np.testing.assert_allclose(run.history["loss"], closed, rtol=1e-5)


@pytest.mark.parametrize("optim", [
    OptimSpec(name="sgd", lr=0.05, steps=12, batch_size=32, loss="ce", eval_every=4),
    OptimSpec(name="momentum", lr=0.02, steps=8, loss="mse", momentum=0.9),
    OptimSpec(name="adamw", lr=1e-3, steps=8, loss="ce", weight_decay=0.1, schedule="warmup_cosine", warmup_steps=3),
])
def test_loop_equals_a_hand_written_pytorch_loop(optim):
    spec = RunSpec(model=ModelSpec(width=24, depth=2, param="mup", base_width=8), optim=optim,
                   data=DataSpec(name="digits", n_train=96, n_test=32), seed=4)
    run = train(spec)
    generator = torch.Generator().manual_seed(4)
    data = load(spec.data)
    from learnmech_core import models

    model = models.build(spec.model, data.info, optim.name, generator)
    opt = make_optimizer(spec, model)
    loss_fn = loss_function(optim.loss)
    y = data.targets(data.y_train, optim.loss)
    losses, order, pos = [], None, 96
    for step in range(optim.steps):
        if optim.batch_size:
            if pos + optim.batch_size > 96:
                order, pos = torch.randperm(96, generator=generator), 0
            idx = order[pos:pos + optim.batch_size]
            pos += optim.batch_size
            xb, yb = data.x_train[idx], y[idx]
        else:
            xb, yb = data.x_train, y
        loss = loss_fn(model(xb), yb)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        for g in opt.param_groups:
            g["lr"] = optim.lr * lr_factor(spec, step) * g["lr_mult"]
        opt.step()
    losses.append(loss_fn(model(data.x_train), y).item())
    assert run.history["loss"].tolist() == losses


def test_divergence_is_an_outcome_not_an_exception():
    spec = RunSpec(optim=OptimSpec(lr=80.0, steps=200), data=DataSpec(n_train=128, n_test=32))
    run = train(spec)
    assert run.status == "diverged"
    assert "at step" in run.message and len(run.history) >= 2
    last = run.history["loss"].iloc[-1]
    assert not math.isfinite(last) or last > 1e3 * max(run.history["loss"].iloc[0], 1.0)
    assert run.history["step"].iloc[-1] < 200


def test_same_spec_gives_bit_identical_histories():
    spec = RunSpec(model=ModelSpec(arch="cnn", width=4, depth=2), data=DataSpec(n_train=64, n_test=32),
                   optim=OptimSpec(name="sgd", lr=0.1, steps=15, batch_size=16, loss="ce", eval_every=5))
    a, b = train(spec), train(spec)
    cols = [c for c in a.history.columns if c != "time_s"]
    assert a.history[cols].equals(b.history[cols])
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_stop_progress_and_schedule():
    calls, seen = [], []
    spec = RunSpec(optim=OptimSpec(lr=0.1, steps=50, schedule="warmup_cosine", warmup_steps=10),
                   data=DataSpec(n_train=64, n_test=16))
    run = train(spec, on_progress=seen.append, should_stop=lambda: len(calls.append(1) or calls) > 20)
    assert run.status == "stopped" and run.history["step"].iloc[-1] == 20
    assert [p.step for p in seen] == list(range(21)) and seen[-1].fraction == pytest.approx(0.4)
    lr = run.history["lr"].to_numpy()
    assert lr[0] == pytest.approx(0.01) and lr[9] == pytest.approx(0.1)
    assert lr[20] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 10 / 40)))


def test_failing_probe_records_nan_and_reason_and_the_run_goes_on():
    spec = RunSpec(data=DataSpec(name="teacher_student", n_train=64, n_test=16),
                   optim=OptimSpec(steps=10), probes=ProbeSpec(collapse_every=5))
    run = train(spec)
    assert run.status == "ok" and run.history["nc1"].isna().all()
    assert run.probe_errors and "neural-collapse metrics need a classification dataset" in run.probe_errors[0]


def test_norm_columns():
    run = train(RunSpec(data=DataSpec(n_train=64, n_test=16), optim=OptimSpec(steps=5),
                        probes=ProbeSpec(layer_norms=True)))
    h = run.history
    assert h["weight_change"].iloc[0] == 0.0 and h["weight_change"].iloc[-1] > 0
    assert h["balance_0"].iloc[0] == pytest.approx(h["wnorm2_1"].iloc[0] - h["wnorm2_0"].iloc[0])
    assert math.isnan(h["grad_norm"].iloc[-1]) and h["grad_norm"].iloc[0] > 0


def test_unavailable_device_fails_with_a_message():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    run = train(RunSpec(device="cuda", optim=OptimSpec(steps=2), data=DataSpec(n_train=16, n_test=4)))
    assert run.status == "failed" and "no CUDA GPU is available" in run.message
