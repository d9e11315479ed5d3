"""Sweeps: expansion and validation, vmap ensembles equal serial runs, divergence, resume, backends, CLI."""

import json

import numpy as np
import pytest

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, train
from learnmech_core import sweep as sweep_mod
from learnmech_core.cli import main
from learnmech_core.ensemble import EnsembleUnsupported, ensemble_group, train_ensemble
from learnmech_core.store import RunStore
from learnmech_core.sweep import SweepSpec, parse_axis, plan, run_sweep, value_range

RTOL = 1e-5
TINY = RunSpec(model=ModelSpec(width=8, depth=1), data=DataSpec(name="moons", n_train=32, n_test=16),
               optim=OptimSpec(name="gd", lr=0.1, steps=12, loss="ce", eval_every=4))
MLP = RunSpec(model=ModelSpec(arch="mlp", width=16, depth=2, activation="tanh", param="mup", base_width=8),
              data=DataSpec(name="digits", n_train=64, n_test=32),
              optim=OptimSpec(name="gd", lr=0.1, steps=20, loss="mse", eval_every=10),
              probes=ProbeSpec(sharpness_every=10, sharpness_tol=1e-7))
CNN = RunSpec(model=ModelSpec(arch="cnn", width=4, depth=2, activation="relu"),
              data=DataSpec(name="digits", n_train=48, n_test=16),
              optim=OptimSpec(name="momentum", lr=0.05, steps=20, loss="ce", eval_every=5, momentum=0.9),
              probes=ProbeSpec(sharpness_every=10, sharpness_tol=1e-7))


def assert_same_run(a, b, rtol=RTOL, skip=("time_s",)):
    """Same status, columns and numbers (relative, with an absolute floor for values near zero)."""
    assert a.status == b.status, (a.status, a.message, b.status, b.message)
    assert a.spec.key() == b.spec.key()
    assert list(a.history.columns) == list(b.history.columns)
    cols = [c for c in a.history.columns if c not in skip]
    x, y = a.history[cols].to_numpy(float), b.history[cols].to_numpy(float)
    assert x.shape == y.shape
    np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-7, equal_nan=True, err_msg=str(cols))


# ---------------------------------------------------------------------------------------------
# expansion and validation


def test_expansion_order_is_a_product_with_the_last_axis_fastest_and_keys_are_stable():
    sweep = SweepSpec(TINY, {"lr": [0.1, 0.2], "seed": [0, 1, 2]})
    assert sweep.axis_names == ["optim.lr", "seed"]
    assert [(p["optim.lr"], p["seed"]) for p in sweep.points()] == [
        (0.1, 0), (0.1, 1), (0.1, 2), (0.2, 0), (0.2, 1), (0.2, 2)]
    expected = [TINY.replace(**{"optim.lr": lr, "seed": s}).key() for lr in (0.1, 0.2) for s in (0, 1, 2)]
    assert sweep.keys() == expected == [s.key() for s in sweep.specs()]
    again = SweepSpec.from_dict(json.loads(json.dumps(sweep.to_dict())))
    assert again.keys() == expected and again == sweep
    assert list(sweep.table().columns) == ["key", "optim.lr", "seed"] and len(sweep) == 6


def test_any_field_can_be_an_axis_including_architecture_and_dataset():
    base = TINY.replace(**{"data.name": "digits", "data.n_train": 32, "optim.name": "sgd"})
    sweep = SweepSpec(base, [("arch", ["mlp", "cnn"]), ("model.width", [4, 8]), ("batch_size", [0, 16])])
    assert len(sweep) == 8
    assert {s.model.arch for s in sweep.specs()} == {"mlp", "cnn"}
    assert sweep.specs()[1].optim.batch_size == 16 and sweep.specs()[2].model.width == 8


@pytest.mark.parametrize("axes, field", [
    ({"nope": [1]}, "nope"),
    ({"lr": []}, "optim.lr"),
    ({"lr": [0.1, 0.1]}, "optim.lr"),
    ({"lr": 0.1}, "optim.lr"),
    ({"lr": [0.1, -1.0]}, "optim.lr"),
    ({"width": [8, 0]}, "model.width"),
    ({"lr": [0.1], "optim.lr": [0.2]}, "optim.lr"),
    ({"dataset": ["moons", "nope"]}, "data.name"),
])
def test_bad_axes_raise_value_errors_naming_the_field(axes, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        SweepSpec(TINY, axes)


def test_the_size_cap_follows_the_profile(monkeypatch):
    SweepSpec(TINY, {"seed": list(range(100))})
    monkeypatch.setenv("LEARNMECH_PROFILE", "hosted")
    with pytest.raises(ValueError, match="at most 64"):
        SweepSpec(TINY, {"seed": list(range(65))})


def test_cli_axis_syntax():
    assert parse_axis("lr=0.01,0.02") == ("optim.lr", [0.01, 0.02])
    assert parse_axis("seed=0..3") == ("seed", [0, 1, 2, 3])
    assert parse_axis("arch=mlp,cnn") == ("model.arch", ["mlp", "cnn"])
    assert parse_axis("probes.layer_norms=true,false") == ("probes.layer_norms", [True, False])
    for bad, field in (("seed=3..1", "seed"), ("width=a,b", "model.width"), ("lr", "NAME=VALUES")):
        with pytest.raises(ValueError, match=field):
            parse_axis(bad)


def test_ranges_and_labels_for_a_ui():
    assert value_range(0.01, 0.1, 3) == [0.01, 0.055, 0.1]
    assert value_range(0.001, 0.1, 3, log=True) == [0.001, 0.01, 0.1]
    assert value_range(16, 64, 3, log=True, integer=True) == [16, 32, 64]
    with pytest.raises(ValueError, match="positive"):
        value_range(0.0, 1.0, 3, log=True)
    sweep = SweepSpec(TINY, {"lr": value_range(0.05, 0.1, 2), "seed": [0, 1]})
    assert sweep.labels()[1] == "optim.lr=0.05, seed=1"


# ---------------------------------------------------------------------------------------------
# vmap ensembles


@pytest.mark.parametrize("base, axes", [
    (MLP, {"optim.lr": [0.05, 0.2], "model.init_scale": [1.0, 1.5]}),
    (CNN, {"seed": [0, 1], "optim.lr": [0.02, 0.05], "optim.weight_decay": [0.0, 1e-3]}),
])
def test_vmap_ensemble_equals_serial_runs_including_sharpness(base, axes):
    """Loss histories, norms, accuracies and sharpness (both at tol 1e-7) within 1e-5 relative."""
    specs = SweepSpec(base, axes).specs()
    assert len({ensemble_group(s) for s in specs}) == 1
    for member, serial in zip(train_ensemble(specs), [train(s) for s in specs], strict=True):
        assert member.status == "ok" and "sharpness" in member.history
        assert_same_run(member, serial, skip=("time_s", "sharpness_hvps"))
        assert member.weights.keys() == serial.weights.keys()
        for k in serial.weights:
            np.testing.assert_allclose(member.weights[k], serial.weights[k], rtol=1e-4, atol=1e-6)


def test_adam_ensemble_with_per_member_betas_equals_serial():
    base = TINY.replace(**{"optim.name": "adamw", "optim.lr": 0.01, "optim.weight_decay": 0.1})
    specs = SweepSpec(base, {"optim.beta2": [0.99, 0.999], "optim.lr": [0.01, 0.03]}).specs()
    for member, serial in zip(train_ensemble(specs), [train(s) for s in specs], strict=True):
        assert_same_run(member, serial)


def test_a_diverging_member_is_frozen_and_does_not_affect_the_others():
    specs = SweepSpec(TINY.replace(**{"optim.steps": 20}), {"lr": [0.1, 3000.0, 0.3]}).specs()
    runs = train_ensemble(specs)
    assert [r.status for r in runs] == ["ok", "diverged", "ok"]
    serial_diverged = train(specs[1])
    assert_same_run(runs[1], serial_diverged)
    assert runs[1].message == serial_diverged.message and runs[1].history["step"].max() < 20
    alone = train_ensemble([specs[0], specs[2]])  # the same members without the diverging one
    for with_it, without in zip([runs[0], runs[2]], alone, strict=True):
        assert_same_run(with_it, without, rtol=1e-6)
        assert with_it.history["step"].max() == 20


def test_specs_outside_an_ensemble_are_refused_and_planned_elsewhere():
    minibatch = TINY.replace(**{"optim.name": "sgd", "optim.batch_size": 8})
    assert ensemble_group(minibatch) is None
    with pytest.raises(EnsembleUnsupported, match="minibatch"):
        train_ensemble([minibatch])
    with pytest.raises(EnsembleUnsupported, match="differ only"):
        train_ensemble([TINY, TINY.replace(**{"model.width": 4})])
    ntk = TINY.replace(**{"model.param": "ntk"})
    assert ensemble_group(ntk) != ensemble_group(ntk.replace(**{"model.init_scale": 2.0}))
    seeds = SweepSpec(TINY, {"seed": [0, 1, 2]}).specs()
    assert [kind for kind, _ in plan(seeds, "auto")] == ["vmap"]
    assert [kind for kind, _ in plan(seeds + [minibatch], "vmap")] == ["vmap", "serial"]
    assert [kind for kind, _ in plan(seeds, "serial")] == ["serial"]


def test_auto_does_not_ensemble_compute_bound_models():
    big = RunSpec(model=ModelSpec(width=256, depth=3), data=DataSpec(name="digits", n_train=1024, n_test=0),
                  optim=OptimSpec(steps=100))
    kinds = [kind for kind, _ in plan(SweepSpec(big, {"seed": [0, 1, 2, 3]}).specs(), "auto")]
    assert "vmap" not in kinds and kinds[0] == ("process" if sweep_mod._cores() > 1 else "serial")


# ---------------------------------------------------------------------------------------------
# run_sweep: store, progress, stop and resume


def test_run_sweep_reads_the_store_trains_only_what_is_missing_and_resumes_after_a_stop(monkeypatch):
    store = RunStore()
    sweep = SweepSpec(TINY, {"seed": [0, 1, 2, 3]})
    trained = []
    real_train = sweep_mod.train
    monkeypatch.setattr(sweep_mod, "train", lambda spec, **kw: trained.append(spec.key()) or real_train(spec, **kw))
    calls = []
    first = run_sweep(sweep, backend="serial", store=store, on_progress=lambda *a: calls.append(a),
                      should_stop=lambda: bool(calls) and calls[-1][0] >= 2)
    keys = sweep.keys()
    assert trained == keys[:2] and [store.has(k) for k in keys] == [True, True, False, False]
    assert [r.status for r in first] == ["ok", "ok", "stopped", "stopped"]
    assert calls[0] == (0, 4, keys[0]) and calls[-1] == (2, 4, keys[1])
    second = run_sweep(sweep, backend="serial", store=store)
    assert trained == keys and all(store.has(k) for k in keys)
    assert [r.status for r in second] == ["ok"] * 4 and [r.key for r in second] == keys
    assert_same_run(second[0], first[0])
    third = run_sweep(sweep, backend="auto", store=store)
    assert trained == keys and [r.key for r in third] == keys


def test_a_stop_between_ensemble_steps_stores_nothing_and_the_rerun_trains_the_ensemble():
    store = RunStore()
    sweep = SweepSpec(TINY, {"seed": [0, 1]})
    steps = []
    runs = run_sweep(sweep, backend="vmap", store=store, should_stop=lambda: len(steps) > 3 or steps.append(1))
    assert [r.status for r in runs] == ["stopped", "stopped"] and not any(store.has(k) for k in sweep.keys())  # noqa: SIM118 (run keys, not a dict)
    runs = run_sweep(sweep, backend="vmap", store=store)
    assert [r.status for r in runs] == ["ok", "ok"] and all(store.has(k) for k in sweep.keys())  # noqa: SIM118 (run keys, not a dict)
    assert runs[0].timings["backend"] == "vmap" and runs[0].timings["ensemble_size"] == 2


def test_process_backend_equals_serial():
    sweep = SweepSpec(TINY, {"model.width": [4, 8], "seed": [3]})
    runs = run_sweep(sweep, backend="process", store=False, workers=2)
    for pooled, spec in zip(runs, sweep.specs(), strict=True):
        assert_same_run(pooled, train(spec))


def test_ray_backend_equals_serial_on_a_local_instance(monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-extra.txt")
    monkeypatch.delenv("LEARNMECH_RAY_ADDRESS", raising=False)
    ray.init(num_cpus=2, **sweep_mod.ray_init_kwargs())  # a local instance shipping the package
    try:
        store = RunStore()
        sweep = SweepSpec(TINY, {"seed": [0, 1]})
        runs = run_sweep(sweep, backend="ray", store=store)
        assert all(store.has(k) for k in sweep.keys())  # noqa: SIM118 (run keys, not a dict)
        assert ray.is_initialized()  # the caller's instance is left running
        for remote, spec in zip(runs, sweep.specs(), strict=True):
            assert_same_run(remote, train(spec))
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_sweep_trains_and_reuses_runs(tmp_path, capsys):
    base = tmp_path / "spec.json"
    base.write_text(TINY.to_json())
    argv = ["sweep", "--base", str(base), "--axis", "lr=0.05,0.1", "--axis", "seed=0..1", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trained"] == 4 and [r["optim.lr"] for r in out["runs"]] == [0.05, 0.05, 0.1, 0.1]
    assert all(r["status"] == "ok" for r in out["runs"])
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["reused"] == 4
    assert main(["sweep", "--base", str(base), "--axis", "width=0,1"]) == 2
    assert "model.width" in capsys.readouterr().err
    assert main(["sweep", "--base", str(base), "--axis", "lr=0.1", "--backend", "gpu"]) == 2
