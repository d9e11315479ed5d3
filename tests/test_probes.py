"""Probes inside a run agree with the instruments applied directly to the same weights."""

import numpy as np
import pytest
import torch

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, train
from learnmech_core.curvature import full_hessian
from learnmech_core.train import build_model, loss_function

SPEC = RunSpec(model=ModelSpec(width=6, depth=1), data=DataSpec(n_train=40, n_test=10, classes=(0, 1, 2)),
               optim=OptimSpec(name="gd", lr=0.3, steps=10, loss="ce", eval_every=5),
               probes=ProbeSpec(sharpness_every=5, sharpness_tol=1e-7, topk_every=10, topk=3, esd_every=10,
                                ntk_every=5, ntk_points=8, noise_every=10, collapse_every=10, density_every=10),
               dtype="float64")


@pytest.fixture(scope="module")
def run():
    result = train(SPEC)
    assert result.status == "ok" and result.probe_errors == []
    return result


def _final_model_and_batch(run):
    model, data = build_model(SPEC, weights=run.weights)
    model = model.double()
    x = data.x_train.double()
    y = data.targets(data.y_train, "ce")
    return model, x, y


def test_sharpness_and_topk_equal_the_dense_hessian(run):
    model0, data = build_model(SPEC)
    x, y = data.x_train.double(), data.y_train
    loss_fn = loss_function("ce")
    exact0 = torch.linalg.eigvalsh(full_hessian(model0.double(), loss_fn, x, y)).numpy()[::-1]
    assert run.history["sharpness"].iloc[0] == pytest.approx(exact0[0], rel=1e-6)
    model, x, y = _final_model_and_batch(run)
    exact = torch.linalg.eigvalsh(full_hessian(model, loss_fn, x, y)).numpy()[::-1]
    assert run.history["sharpness"].iloc[-1] == pytest.approx(exact[0], rel=1e-6)
    topk = run.spectra[(run.spectra.kind == "hessian_topk") & (run.spectra.step == 10)].sort_values("index")
    np.testing.assert_allclose(topk["value"].to_numpy(), exact[:3], rtol=1e-3)


def test_density_ntk_noise_collapse_and_esd_columns(run):
    from learnmech_core.collapse import classifier_layer, neural_collapse, penultimate_features
    from learnmech_core.noise import noise_scale
    from learnmech_core.spectra import layer_summaries

    dens = run.spectra[run.spectra.step == 10]
    gx = dens[dens.kind == "hessian_density_x"]["value"].to_numpy()
    gy = dens[dens.kind == "hessian_density_y"]["value"].to_numpy()
    assert len(gx) == 400 and np.trapezoid(gy, gx) == pytest.approx(1.0, abs=1e-6)
    assert run.history["ntk_distance"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert run.history["ntk_distance"].iloc[-1] > 0
    model, x, y = _final_model_and_batch(run)
    b_simple = noise_scale(model, loss_function("ce"), x, y).b_simple
    assert run.history["noise_scale"].iloc[-1] == pytest.approx(b_simple, rel=1e-9)
    readout = classifier_layer(model).weight.detach()
    nc = neural_collapse(penultimate_features(model, x), y.numpy(), classifier_weight=readout)
    assert run.history["nc1"].iloc[-1] == pytest.approx(nc.nc1, rel=1e-9)
    summary = layer_summaries(model)
    for _, row in summary.iterrows():
        alpha = run.history[f"alpha_{row['layer']}"].iloc[-1]
        np.testing.assert_allclose(alpha, row["alpha"], rtol=1e-9, equal_nan=True)
        assert run.history[f"mp_ks_{row['layer']}"].iloc[-1] == pytest.approx(row["mp_ks"], rel=1e-9)


def test_preconditioned_sharpness_probe_runs_under_adam():
    spec = SPEC.replace(**{"optim.name": "adam", "optim.lr": 0.01, "probes.precond_sharpness_every": 5})
    result = train(spec)
    values = result.history["precond_sharpness"].dropna()
    assert result.probe_errors == [] and len(values) == 2 and (values > 0).all()


def test_adding_a_probe_never_changes_the_training_trajectory():
    base = RunSpec(model=ModelSpec(width=8, depth=1), data=DataSpec(n_train=48, n_test=8),
                   optim=OptimSpec(name="sgd", lr=0.1, steps=12, batch_size=8, loss="ce", eval_every=0))
    plain = train(base)
    probed = train(base.replace(**{"probes.sharpness_every": 3, "probes.density_every": 6}))
    assert plain.history["loss"].tolist() == probed.history["loss"].tolist()


def test_sharpness_probe_warm_starts_from_its_previous_result():
    from types import SimpleNamespace

    from learnmech_core.curvature import EigResult
    from learnmech_core.probes import SharpnessProbe

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (60,), generator=g)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    loss_fn = torch.nn.CrossEntropyLoss()
    ctx = SimpleNamespace(model=model, loss_fn=loss_fn, inputs=x, targets=y, state={},
                          generator=torch.Generator().manual_seed(1),
                          optimizer=torch.optim.SGD(model.parameters(), lr=0.1))  # plain GD: no second solve
    probe = SharpnessProbe(every=1, tol=1e-6)
    first, _ = probe.measure(ctx)
    assert isinstance(ctx.state["sharpness_prev"], EigResult) and ctx.state["sharpness_prev"].vectors.shape == (1, 67)
    with torch.no_grad():  # a small step, as between two probed training steps
        for p in model.parameters():
            p.add_(1e-3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    second, _ = probe.measure(ctx)
    exact = torch.linalg.eigvalsh(full_hessian(model, loss_fn, x, y))[-1].item()
    assert second["sharpness"] == pytest.approx(exact, rel=1e-5)
    assert second["sharpness_hvps"] < first["sharpness_hvps"]
    assert first["sharpness_converged"] == 1.0 and second["sharpness_converged"] == 1.0
    assert "precond_sharpness" not in second  # plain GD's geometry: the sharpness is the one 2/eta bounds


def test_an_uncertified_sharpness_is_stored_flagged(monkeypatch, tmp_path):
    from learnmech_core.curvature import eigensolver

    monkeypatch.setattr(eigensolver, "DEFAULT_MAX_ITER", 3)  # the product cap is hit before tol 1e-7
    run = train(SPEC.replace(**{"probes.topk_every": 0, "probes.density_every": 0}))
    h = run.history.dropna(subset=["sharpness"])
    assert run.status == "ok" and len(h) == 3
    assert h["sharpness_converged"].tolist() == [0.0] * 3
    assert (h["sharpness_hvps"] == 3).all() and (h["sharpness"] > 0).all()  # the best estimate, flagged
    assert run.history["sharpness_converged"].isna().sum() == len(run.history) - 3  # absent where not measured
    from learnmech_core.store import RunStore

    store = RunStore(tmp_path)
    store.put(run)
    assert store.get(run.key).history["sharpness_converged"].equals(run.history["sharpness_converged"])
    from learnmech_core.plots import phenomena_curvature, runs
    from learnmech_core.plots.style import UNCERTIFIED_NAME

    for fig in (runs.sharpness_figure([run]), runs.sharpness_figure([run], normalised=True),
                phenomena_curvature.sharpness_overlay([run])):
        hollow = [t for t in fig.data if t.name == UNCERTIFIED_NAME]
        assert len(hollow) == 1 and len(hollow[0].x) == 3 and hollow[0].marker.symbol == "circle-open"


def test_noise_scale_probe_equals_the_dense_reference_and_stops_at_the_target(monkeypatch):
    from learnmech_core.phenomena import critical_batch_size as cbs

    monkeypatch.setattr(cbs, "N_RADEMACHER", 2000)
    spec = SPEC.replace(**{"optim.steps": 30, "optim.loss": "mse", "probes.extra": (cbs.PROBE,),
                           "probes.extra_every": 1,
                           "probes.sharpness_every": 0, "probes.topk_every": 0, "probes.esd_every": 0,
                           "probes.ntk_every": 0, "probes.noise_every": 0, "probes.collapse_every": 0,
                           "probes.density_every": 0})
    target = {}
    monkeypatch.setattr(cbs, "target_loss", lambda name: target["loss"])
    target["loss"] = float(train(spec.replace(**{"probes.extra": ()})).history["loss"].iloc[6])
    run = train(spec)
    assert run.status == "ok" and run.probe_errors == []
    h = run.history
    # measured at every step up to and including the first one at or below the target, then no more
    assert h["b_noise"].notna().tolist() == [True] * 7 + [False] * (len(h) - 7)
    model, data = build_model(spec)
    model = model.double()
    x, y = data.x_train.double(), data.targets(data.y_train, "mse")
    loss_fn = loss_function("mse")
    params = list(model.parameters())
    grads = []
    for i in range(len(x)):
        g = torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]), params)
        grads.append(torch.cat([t.reshape(-1) for t in g]))
    g = torch.stack(grads)
    mean, sigma = g.mean(0), torch.cov(g.T)
    hess = full_hessian(model, loss_fn, x, y)
    b_simple = float(torch.trace(sigma) / (mean @ mean))
    b_noise = float(torch.trace(hess @ sigma) / (mean @ hess @ mean))
    assert h["b_simple"].iloc[0] == pytest.approx(b_simple, rel=1e-9)
    assert h["b_noise"].iloc[0] == pytest.approx(b_noise, rel=0.05)  # 2000 Rademacher probes (seeded)
