"""Explore's live-teaching tools and the hosted settings under AppTest (runs train on threads here).

The decision boundary of a 2-D dataset with the data-noise control; a run whose learning rate was
changed, opened from its link, drawn with the change marked; a run above the memory cap refused with
a message naming the cap; the hosted profile switched on by a Streamlit secret.
"""

from __future__ import annotations

import base64

import numpy as np

from learnmech_app.spec_form import explore_params
from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, train
from learnmech_core.boundary import from_run
from learnmech_core.store import RunStore
from tests.test_app import app, app_env, assert_clean, charts, errors, no_component_scan, one_torch_thread, wait_for_job

__all__ = ["app_env", "no_component_scan", "one_torch_thread"]  # AppTest fixtures of test_app.py, used here too


def values(data) -> np.ndarray:
    """A Plotly array from the figure's JSON: a list, or Plotly's typed array {dtype, bdata, shape}."""
    if isinstance(data, dict) and "bdata" in data:
        flat = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        shape = [int(n) for n in str(data.get("shape", len(flat))).split(",")]
        return flat.reshape(shape).astype(float)
    return np.asarray(data, dtype=float)


def moons(**changes) -> RunSpec:
    spec = RunSpec(model=ModelSpec(width=8, depth=1), data=DataSpec(name="moons", n_train=64, n_test=16),
                   optim=OptimSpec(steps=6, lr=0.1), probes=ProbeSpec(sharpness_every=3))
    return spec.replace(**changes) if changes else spec


def test_a_moons_run_draws_its_decision_boundary_with_the_chosen_noise():
    query = {"data.name": "moons", "model.width": "8", "model.depth": "1", "data.n_train": "64",
             "data.n_test": "16", "optim.steps": "6", "every": "3", "data.noise": "0.3"}
    at = app("pages/explore.py", query)
    assert at.slider(key="data.noise").value == 0.3
    at.button(key="run").click().run()
    wait_for_job(at, "explore")
    assert_clean(at)
    run = at.session_state["job:explore"].runs()[0]
    assert run.spec.data.noise == 0.3 and run.status == "ok"
    heat = [c for c in charts(at) if any(t.get("type") == "heatmap" for t in c["data"])]
    assert len(heat) == 1
    z = values(next(t for t in heat[0]["data"] if t["type"] == "heatmap")["z"])
    np.testing.assert_allclose(z, from_run(run).z, atol=1e-6)  # the figure shows the final model's values
    classes = {t.get("name") for t in heat[0]["data"] if t.get("type") == "scatter"}
    assert classes == {"class 0", "class 1"}


def test_a_run_with_a_changed_learning_rate_opens_from_its_link_with_the_change_marked():
    spec = moons(**{"optim.steps": 20, "optim.lr_changes": ((8, 0.4),)})
    RunStore().put(train(spec))
    at = app("pages/explore.py", explore_params(spec))
    assert_clean(at)
    assert any("already stored" in s.value for s in at.success)
    loss = next(c for c in charts(at) if "loss" in str(c["layout"].get("title", {})).lower())
    marks = [a["text"] for a in loss["layout"].get("annotations", [])]
    assert "η → 0.4 (step 8)" in marks
    sharp = next(c for c in charts(at) if "2/η" in str(c["layout"].get("title", {})))
    threshold = next(t for t in sharp["data"] if "η changed" in str(t.get("name")))
    np.testing.assert_allclose(sorted(set(np.round(values(threshold["y"]), 5))), [2 / 0.4, 2 / 0.1], rtol=1e-6)


def test_a_run_over_the_hosted_memory_cap_is_refused_before_it_starts(monkeypatch):
    monkeypatch.setenv("LEARNMECH_PROFILE", "hosted")
    query = {"data.name": "gaussian_mixture", "data.dim": "64", "model.width": "1024", "model.depth": "1",
             "data.n_train": "5000", "data.n_test": "0", "model.arch": "mlp"}  # measured: 699 MB at its peak
    at = app("pages/explore.py", query)
    assert any("hosted profile's cap of 600 MB per run" in e for e in errors(at)), errors(at)
    assert at.button(key="run").disabled


def test_the_hosted_profile_comes_from_a_streamlit_secret(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP

    monkeypatch.delenv("LEARNMECH_PROFILE", raising=False)
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["LEARNMECH_PROFILE"] = "hosted"
    at.run()
    assert_clean(at)
    assert "hosted profile" in " ".join(c.value for c in at.sidebar.caption)
