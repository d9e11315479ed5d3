"""Specs: validation messages, stable keys, JSON and URL round-trips, profile caps."""

import json

import pytest

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec

SPECS = [
    RunSpec(),
    RunSpec(model=ModelSpec(arch="cnn", width=8, depth=2, activation="relu", param="mup"),
            data=DataSpec(name="digits", n_train=100, n_test=50, classes=(1, 3, 7)),
            optim=OptimSpec(name="adamw", lr=3e-3, steps=10, loss="ce", weight_decay=1.0, schedule="warmup_cosine",
                            warmup_steps=2), probes=ProbeSpec(sharpness_every=5), seed=3),
    RunSpec(model=ModelSpec(arch="deep_linear", depth=3, init_scale=0.01), optim=OptimSpec(loss="mse"),
            data=DataSpec(name="linear_lowrank", singular_values=(3.0, 1.5), dim=6)),
    RunSpec(model=ModelSpec(arch="transformer", width=32, depth=1), optim=OptimSpec(loss="ce"),
            data=DataSpec(name="modular_arithmetic", modulus=13, n_train=100, n_test=50)),
]


@pytest.mark.parametrize("spec", SPECS)
def test_json_and_query_round_trips(spec):
    assert RunSpec.from_json(spec.to_json()) == spec
    assert RunSpec.from_json(spec.to_json()).key() == spec.key()
    query = spec.to_query()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in query.items())
    assert RunSpec.from_query(query) == spec


def test_key_is_stable_and_sensitive():
    a, b = RunSpec(), RunSpec()
    assert a.key() == b.key() and len(a.key()) == 16
    assert RunSpec(optim=OptimSpec(lr=0.1)).key() != a.key()
    # ints and floats that are the same number give the same key (values are coerced)
    assert RunSpec(optim=OptimSpec(lr=1)).key() == RunSpec(optim=OptimSpec(lr=1.0)).key()
    assert json.loads(a.to_json())["optim"]["lr"] == 0.05


def test_fields_added_later_leave_stored_keys_unchanged():
    # keys computed before model.head_width existed: stored runs and the gallery keep their names
    assert RunSpec().key() == "d6d73c07905e9352"
    assert RunSpec(model=ModelSpec(arch="cnn"), data=DataSpec(name="digits")).key() == "5af43c06c6bdff65"
    with_head = RunSpec(model=ModelSpec(arch="cnn", head_width=8), data=DataSpec(name="digits"))
    assert with_head.key() not in ("5af43c06c6bdff65", RunSpec(model=ModelSpec(arch="cnn", head_width=16),
                                                               data=DataSpec(name="digits")).key())
    assert RunSpec.from_json(with_head.to_json()).key() == with_head.key()


def test_default_spec_has_empty_query_and_replace():
    assert RunSpec().to_query() == {}
    spec = RunSpec().replace(**{"optim.lr": 0.2, "model.width": 64})
    assert spec.optim.lr == 0.2 and spec.model.width == 64
    assert spec.to_query() == {"model.width": "64", "optim.lr": "0.2"}


@pytest.mark.parametrize("build, message", [
    (lambda: ModelSpec(width=0), "model.width must be between 1 and 4096 (got 0)"),
    (lambda: ModelSpec(arch="lstm"),
     "model.arch must be one of mlp, deep_linear, cnn, resnet, transformer (got 'lstm')"),
    (lambda: OptimSpec(lr=-0.1), "optim.lr must be greater than 0 and at most 10000 (got -0.1)"),
    (lambda: OptimSpec(steps=1.5), "optim.steps must be an integer (got 1.5)"),
    (lambda: DataSpec(name="imagenet"), "data.name must be one of digits, gaussian_mixture"),
    (lambda: OptimSpec(name="gd", batch_size=32), "optim.batch_size must be 0 (full batch) for gd"),
    (lambda: RunSpec(data=DataSpec(name="teacher_student"), optim=OptimSpec(loss="ce")),
     "optim.loss 'ce' needs a classification"),
    (lambda: RunSpec(model=ModelSpec(arch="cnn"), data=DataSpec(name="moons")),
     "model.arch 'cnn' needs image datasets"),
    (lambda: RunSpec(model=ModelSpec(arch="transformer"), data=DataSpec(name="digits")),
     "model.arch 'transformer' needs token datasets"),
    (lambda: RunSpec(data=DataSpec(n_train=1500, n_test=400)), "data.n_train + data.n_test must be at most 1797"),
    (lambda: RunSpec(optim=OptimSpec(name="sgd", batch_size=600)), "optim.batch_size must be at most data.n_train=512"),
    (lambda: DataSpec(name="modular_arithmetic", modulus=5, n_train=20, n_test=10), "at most 25 pairs"),
    (lambda: ModelSpec(arch="transformer", width=30, heads=4), "divisible by model.heads"),
    (lambda: RunSpec(seed=-1), "seed must be between 0 and"),
    (lambda: RunSpec(device="tpu"), "device must be one of auto, cpu, cuda, mps (got 'tpu')"),
])
def test_bad_values_name_field_value_and_range(build, message):
    with pytest.raises(ValueError) as err:
        build()
    assert message in str(err.value)


def test_parameter_cap_and_hosted_profile(monkeypatch):
    with pytest.raises(ValueError, match="parameters; the local profile allows at most 20,000,000"):
        RunSpec(model=ModelSpec(width=4096, depth=3))
    monkeypatch.setenv("LEARNMECH_PROFILE", "hosted")
    with pytest.raises(ValueError, match=r"model.width must be between 1 and 1024 \(got 2048\)"):
        ModelSpec(width=2048)
    with pytest.raises(ValueError, match="optim.steps must be between 1 and 5000"):
        OptimSpec(steps=10_000)
    with pytest.raises(ValueError, match="hosted profile allows at most 300,000"):
        RunSpec(model=ModelSpec(width=1024, depth=2))
    monkeypatch.setenv("LEARNMECH_PROFILE", "cluster")
    with pytest.raises(ValueError, match="LEARNMECH_PROFILE must be one of local, hosted"):
        ModelSpec()


def test_from_dict_rejects_unknown_fields_and_bad_links():
    with pytest.raises(ValueError, match="unknown field model.widht"):
        RunSpec.from_dict({"model": {"widht": 3}})
    with pytest.raises(ValueError, match="model.width could not be read from the link"):
        RunSpec.from_query({"model.width": "wide"})
    with pytest.raises(ValueError, match="spec JSON is not valid JSON"):
        RunSpec.from_json("{")
    # unrelated query parameters (view state) are ignored
    assert RunSpec.from_query({"page": "explore", "optim.lr": "0.1"}).optim.lr == 0.1
