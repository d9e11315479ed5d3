"""Teaching live, in the core: a learning-rate change mid-run (train's control hook, optim.lr_changes),
its marks on the charts, the decision boundary of 2-D classifiers, and the data-noise control."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, train
from learnmech_core.boundary import Boundary, from_run, grid_axes, predict_grid, supports
from learnmech_core.data import describe, load
from learnmech_core.plots.boundary import boundary_figure
from learnmech_core.plots.runs import curves_figure, lr_change_points, sharpness_figure
from learnmech_core.train import build_model


def spec(**changes) -> RunSpec:
    s = RunSpec(model=ModelSpec(width=16, depth=1), data=DataSpec(name="moons", n_train=64, n_test=16),
                optim=OptimSpec(steps=30, lr=0.1), probes=ProbeSpec(sharpness_every=5))
    return s.replace(**changes) if changes else s


def test_keys_of_existing_specs_do_not_change():
    assert RunSpec().key() == "d6d73c07905e9352"  # the key before optim.lr_changes existed


def test_a_change_through_control_is_recorded_and_the_returned_spec_replays_it_exactly():
    seen = []

    def control(step, model):
        seen.append(step)
        return 0.5 if step == 12 else None

    live = train(spec(), control=control)
    assert seen == list(range(30))  # consulted before every step but the final evaluation
    assert live.spec.optim.lr_changes == ((12, 0.5),)
    lrs = live.history.set_index("step")["lr"]
    assert (lrs.loc[:11] == 0.1).all() and (lrs.loc[12:] == 0.5).all()
    replay = train(live.spec)
    for column in ("loss", "sharpness", "lr", "grad_norm"):
        np.testing.assert_array_equal(replay.history[column].to_numpy(), live.history[column].to_numpy())
    plain = train(spec())
    np.testing.assert_array_equal(plain.history["loss"].to_numpy()[:13], live.history["loss"].to_numpy()[:13])
    assert plain.history["loss"].iloc[13] != live.history["loss"].iloc[13]


def test_a_control_returning_the_current_rate_changes_nothing():
    run = train(spec(), control=lambda step, model: 0.1)
    assert run.spec == spec() and run.spec.key() == spec().key()


def test_lr_changes_with_momentum_follow_sgd_with_that_rate():
    """Reference: torch's SGD with momentum whose lr is set to the new value at the change step."""
    s = spec(**{"optim.name": "momentum", "optim.lr_changes": ((10, 0.02),), "probes.sharpness_every": 0})
    run = train(s)
    model, data = build_model(s)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=s.optim.momentum)
    y = data.targets(data.y_train, "mse")
    losses = []
    for step in range(30):
        if step == 10:
            opt.param_groups[0]["lr"] = 0.02
        loss = 0.5 * (model(data.x_train) - y).pow(2).sum(dim=1).mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(run.history["loss"].to_numpy()[:30], losses, rtol=1e-5)


@pytest.mark.parametrize(("changes", "message"), [
    (((0, 0.5),), "between 1 and 29"),
    (((30, 0.5),), "between 1 and 29"),
    (((10, 0.5), (10, 0.2)), "must increase"),
    (((10, -1.0),), "greater than 0"),
    (((10,),), "(step, lr) pairs"),
])
def test_bad_lr_changes_name_the_field(changes, message):
    with pytest.raises(ValueError, match="optim.lr_changes") as err:
        spec(**{"optim.lr_changes": changes})
    assert message in str(err.value)


def test_lr_changes_round_trip_through_json_and_links():
    s = spec(**{"optim.lr_changes": ((5, 0.3), (20, 0.05))})
    assert s.to_query()["optim.lr_changes"] == "5:0.3,20:0.05"
    assert RunSpec.from_query(s.to_query()) == s
    assert RunSpec.from_json(s.to_json()) == s and s.key() != spec().key()


def test_the_charts_mark_the_change_and_the_threshold_follows_eta():
    run = train(spec(**{"optim.lr_changes": ((12, 0.5),)}))
    assert lr_change_points(run) == [(12.0, 12, 0.5)]
    (x_time, step, _), = lr_change_points(run, "lr_time")
    assert step == 12 and x_time == pytest.approx(12 * 0.1)  # 12 steps at eta 0.1 before the change
    fig = curves_figure([run], "loss")
    assert [s.x0 for s in fig.layout.shapes if s.line.dash == "dot"] == [12.0]
    assert "η → 0.5 (step 12)" in [a.text for a in fig.layout.annotations]
    sharp = sharpness_figure([run])
    threshold = next(t for t in sharp.data if "η changed" in (t.name or ""))
    expected = np.where(run.history["step"] < 12, 2 / 0.1, 2 / 0.5)
    np.testing.assert_allclose(np.asarray(threshold.y, dtype=float), expected)
    assert not [s for s in sharp.layout.shapes if s.type == "line" and s.y0 == s.y1 == 20.0]  # no fixed 2/η line


# --- decision boundary --------------------------------------------------------------------------------


def test_grid_axes_cover_the_inputs_with_a_margin():
    x = np.array([[0.0, -1.0], [2.0, 3.0]])
    xs, ys = grid_axes(x, points=11, margin=0.1)
    assert xs[0] == pytest.approx(-0.2) and xs[-1] == pytest.approx(2.2)
    assert ys[0] == pytest.approx(-1.4) and ys[-1] == pytest.approx(3.4) and len(xs) == 11


@pytest.mark.parametrize(("loss", "classes"), [("ce", 2), ("mse", 2), ("ce", 3)])
def test_grid_values_are_the_models_decision_values(loss, classes):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, classes))
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-2, 2, 7)
    b = predict_grid(model, xs, ys, loss, classes, step=3)
    assert b.z.shape == (7, 5) and b.step == 3
    with torch.no_grad():  # reference: the model at each grid point, one by one
        for i, yv in enumerate(ys):
            for j, xv in enumerate(xs):
                out = model(torch.tensor([[xv, yv]], dtype=torch.float32))[0]
                if classes > 2:
                    ref = float(out.argmax())
                elif loss == "ce":
                    p = torch.softmax(out, 0)
                    ref = float(p[1] - p[0])
                else:
                    ref = float(np.clip(float(out[1] - out[0]), -1, 1))
                assert b.z[i, j] == pytest.approx(ref, abs=1e-6)


def test_boundary_from_a_finished_run_separates_its_training_points():
    s = spec(**{"optim.steps": 400, "optim.lr": 0.2, "model.width": 32, "data.noise": 0.05,
                "probes.sharpness_every": 0})
    run = train(s)
    assert run.status == "ok" and run.final("train_acc") >= 0.9
    b = from_run(run)
    data = load(s.data)
    x, y = data.x_train.numpy(), data.y_train.numpy()
    j = np.abs(b.xs[None, :] - x[:, :1]).argmin(axis=1)  # each point's nearest grid cell
    i = np.abs(b.ys[None, :] - x[:, 1:]).argmin(axis=1)
    predicted = (b.z[i, j] > 0).astype(int)
    assert (predicted == y).mean() >= 0.85  # nearest grid cell, not the point itself: a little below train_acc


def test_which_datasets_have_a_boundary():
    assert supports(describe(DataSpec(name="spirals")))
    assert supports(describe(DataSpec(name="gaussian_mixture", dim=2, singular_values=(4.0, 2.0))))
    assert not supports(describe(DataSpec(name="gaussian_mixture")))  # 8-D by default
    assert not supports(describe(DataSpec(name="digits")))


def test_boundary_figure_draws_the_grid_the_boundary_and_each_class():
    b = Boundary(np.linspace(0, 1, 4), np.linspace(0, 1, 3), np.linspace(-1, 1, 12).reshape(3, 4), 2, step=7)
    fig = boundary_figure(b, np.array([[0.1, 0.2], [0.8, 0.9]]), np.array([0, 1]))
    kinds = [t.type for t in fig.data]
    assert kinds == ["heatmap", "contour", "scatter", "scatter"] and "step 7" in fig.layout.title.text
    multi = Boundary(b.xs, b.ys, np.zeros((3, 4)), 3)
    assert [t.type for t in boundary_figure(multi, np.zeros((1, 2)), np.array([2])).data] == ["heatmap", "scatter"]


# --- data noise ------------------------------------------------------------------------------------------


def test_gaussian_mixture_noise_adds_input_noise_and_zero_keeps_the_data():
    base = DataSpec(name="gaussian_mixture", n_train=2000, n_test=0, dim=2, singular_values=(4.0, 2.0))
    clean = load(base).x_train.numpy()
    rng = np.random.default_rng(base.seed)  # reference: the generator before the noise field applied here
    directions = rng.standard_normal((base.n_classes, base.dim))
    means = directions / np.linalg.norm(directions, axis=1, keepdims=True) * base.separation / 2
    y = rng.integers(0, base.n_classes, size=2000)
    ref = (means[y] + rng.standard_normal((2000, base.dim)))[np.random.default_rng(base.seed).permutation(2000)]
    ref = (ref - ref.mean(axis=0)) / ref.std(axis=0)  # shuffled and standardised as data.load does
    np.testing.assert_allclose(clean, ref, atol=1e-5)
    noisy = load(DataSpec(**{**base.__dict__, "noise": 0.5})).x_train.numpy()
    assert not np.allclose(noisy, clean)
