"""Trajectory PCA against numpy's SVD; snapshots kept by the probe and the store; the surface in the PCA plane."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, probes, train
from learnmech_core.store import RunStore
from learnmech_core.train import build_model, loss_function
from learnmech_core.trajectory import grid_around, path_losses, trajectory_landscape, trajectory_pca


def random_walk(t=12, n=40, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=(t, n)) * np.linspace(2.0, 0.2, n), axis=0)


@pytest.mark.parametrize("center", [True, False])
def test_pca_equals_numpy_svd(center):
    w = random_walk()
    pca = trajectory_pca(w, steps=np.arange(0, 120, 10), n_components=3, center=center)
    m = w[:-1] - w[-1]
    a = m - m.mean(axis=0) if center else m
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(pca.singular_values, s[:3], rtol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_ratio, s[:3] ** 2 / np.sum(s**2), rtol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(pca.directions * vt[:3], axis=1)), 1.0, rtol=1e-10)
    np.testing.assert_allclose(pca.directions @ pca.directions.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(pca.coordinates, (w - w[-1]) @ pca.directions.T, atol=1e-10)
    assert np.all(pca.coordinates[0] < 0) and np.all(pca.coordinates[-1] == 0)  # runs towards the origin
    assert list(pca.path().columns) == ["step", "alpha", "beta"] and pca.path()["step"].iloc[-1] == 110


def test_planar_path_is_explained_fully_and_recovered():
    rng = np.random.default_rng(1)
    u, v = np.linalg.qr(rng.normal(size=(30, 2)))[0].T
    t = np.linspace(0.0, 1.0, 9)
    final = rng.normal(size=30)
    w = final + np.outer(3 * (1 - t) ** 2, u) + np.outer(np.sin(3 * t) * (1 - t), v)
    pca = trajectory_pca(w)
    assert pca.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(np.linalg.norm(pca.coordinates, axis=1), np.linalg.norm(w - final, axis=1), rtol=1e-9)


def test_straight_path_and_bad_snapshots_are_refused():
    line = np.outer(np.linspace(1.0, 0.0, 6), np.ones(5))
    with pytest.raises(ValueError, match="spans 1 direction"):
        trajectory_pca(line)
    with pytest.raises(ValueError, match="at least 2 snapshots"):
        trajectory_pca(np.ones((1, 5)))
    with pytest.raises(ValueError, match="finite"):
        trajectory_pca(np.array([[0.0, np.nan], [1.0, 1.0], [2.0, 0.0]]))


def test_grid_covers_the_path_and_the_origin():
    grid = grid_around(np.array([-4.0, -1.0]), 11)
    assert grid[0] == pytest.approx(-5.0) and grid[-1] == pytest.approx(1.0) and len(grid) == 11


def tiny_spec(**probes_kw) -> RunSpec:
    return RunSpec(model=ModelSpec(width=6, depth=1), data=DataSpec(name="moons", n_train=32, n_test=8),
                   optim=OptimSpec(steps=10, lr=0.5), probes=ProbeSpec(**probes_kw))


def flat(state: dict, model: nn.Module) -> np.ndarray:
    return np.concatenate([state[n].reshape(-1) for n, p in model.named_parameters() if p.requires_grad])


def test_probe_keeps_snapshots_and_the_store_round_trips_them():
    spec = tiny_spec(snapshot_every=4)
    run = train(spec)
    assert run.status == "ok" and list(run.snapshots["step"]) == [0, 4, 8, 10]  # the last step always
    model, _ = build_model(spec)
    np.testing.assert_array_equal(run.snapshots["weights"][-1], flat(run.weights, model))
    np.testing.assert_array_equal(run.snapshots["weights"][0], flat(model.state_dict(), model))  # the initial weights
    back = RunStore().get(RunStore().put(run))
    np.testing.assert_array_equal(back.snapshots["weights"], run.snapshots["weights"])
    np.testing.assert_array_equal(back.snapshots["step"], run.snapshots["step"])
    assert train(tiny_spec()).snapshots is None and spec.key() != tiny_spec().key()


def test_snapshots_thin_to_an_even_grid_at_the_cap(monkeypatch):
    monkeypatch.setattr(probes, "MAX_SNAPSHOTS", 4)
    run = train(tiny_spec(snapshot_every=1).replace(**{"optim.steps": 13}))
    # steps 0..13 at most 4 kept: thinned at step 4 (stride 2), step 8 (stride 4) and at the last step (stride 8)
    assert list(run.snapshots["step"]) == [0, 8, 13]


def test_surface_values_equal_the_loss_at_those_weights():
    spec = tiny_spec(snapshot_every=2).replace(**{"optim.steps": 12})
    run = train(spec)
    model, data = build_model(spec)
    loss_fn = loss_function(spec.optim.loss)
    x, y = data.x_train, data.targets(data.y_train, spec.optim.loss)
    pca = trajectory_pca(run.snapshots["weights"], run.snapshots["step"])
    table = trajectory_landscape(model, loss_fn, x, y, pca, points=5)
    assert len(table) == 25
    params = [p for p in model.parameters() if p.requires_grad]
    for row in table.iloc[[0, 7, 12, 24]].itertuples():
        w = pca.final + row.alpha * pca.directions[0] + row.beta * pca.directions[1]
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.from_numpy(w).float(), params)
            expected = float(loss_fn(model(x), y))
        assert row.loss == pytest.approx(expected, rel=1e-5)
    # the loss along the path itself: its first and last entries are the run's first and last training loss
    losses = path_losses(model, loss_fn, x, y, run.snapshots["weights"])
    assert losses[0] == pytest.approx(run.history["loss"].iloc[0], rel=1e-5)
    assert losses[-1] == pytest.approx(run.history["loss"].iloc[-1], rel=1e-5)
