"""The research views in the app (AppTest): Sweeps, the trajectory landscape and Gauss-Newton split on Spectra,
the muP coordinate check, and Your own model (safetensors upload)."""

from __future__ import annotations

import base64
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save
from test_app import (  # noqa: F401  (autouse fixtures of the app tests apply here too)
    app,
    app_env,
    assert_clean,
    charts,
    errors,
    no_component_scan,
    one_torch_thread,
    store_runs,
    tiny_spec,
)

NEW_PAGES = ["pages/sweeps.py", "pages/coord_check.py", "pages/your_model.py"]
SMALL_CHECK = {"widths": ["16", "32"], "seeds": "1", "steps": "2", "n": "32", "data": "moons", "base": "16"}


def values(data) -> np.ndarray:
    """A figure array from the chart's JSON (Plotly sends numeric arrays base64-encoded)."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
    return np.asarray(data)


def test_new_pages_render_with_title_and_explanation():
    at = app("pages/sweeps.py")
    for page in NEW_PAGES:
        at.switch_page(page)
        if page.endswith("coord_check.py"):
            at.query_params.update(SMALL_CHECK)
        at.run()
        assert_clean(at)
        assert len(at.title) == 1, page
        assert len(at.markdown[0].value) > 100, page


def test_sweeps_page_finds_the_varying_settings_and_averages_seeds():
    store_runs(*[tiny_spec(**{"optim.lr": lr, "seed": seed}) for lr in (0.05, 0.5) for seed in (0, 1)])
    at = app("pages/sweeps.py", {"set": "store"})
    assert_clean(at)
    table = at.dataframe[0].value  # seeds averaged by default
    assert len(table) == 2 and set(table["seeds"]) == {2} and "final_loss_std" in table
    par = charts(at)[0]["data"][0]
    assert par["type"] == "parcoords"
    assert [d["label"] for d in par["dimensions"]][:2] == ["optim.lr (log)", "final loss"]
    scatter = charts(at)[1]
    assert scatter["layout"]["xaxis"]["type"] == "log" and "optim.lr" in scatter["layout"]["xaxis"]["title"]["text"]
    assert list(scatter["layout"]["xaxis"]["ticktext"]) == ["0.05", "0.5"]
    at.toggle(key="mean").set_value(False).run()
    assert_clean(at)
    assert len(at.dataframe[0].value) == 4
    assert [d["label"] for d in charts(at)[0]["data"][0]["dimensions"]][:2] == ["optim.lr (log)", "seed"]


def test_sweeps_page_with_too_few_runs_says_so():
    at = app("pages/sweeps.py")
    assert_clean(at)
    assert any("No set of two or more runs" in i.value for i in at.info)


def test_spectra_trajectory_landscape_and_gauss_newton_split():
    (run,) = store_runs(tiny_spec(**{"probes.snapshot_every": 1, "optim.steps": 8}))
    at = app("pages/spectra.py", {"run": run.key, "tab": "Landscape", "dirs": "trajectory", "points": "5"})
    assert_clean(at)
    fig = next(c for c in charts(at) if c["data"] and c["data"][0]["type"] == "contour")
    names = [t.get("name") for t in fig["data"]]
    assert "training path (projected)" in names and "initial weights" in names
    assert "PC1 (" in fig["layout"]["xaxis"]["title"]["text"]
    path = next(t for t in fig["data"] if t.get("name") == "training path (projected)")
    assert len(values(path["x"])) == 9 and values(path["x"])[-1] == 0  # steps 0..8, ending at the final weights
    at = app("pages/spectra.py", {"run": run.key, "tab": "Hessian"})
    at.button(key="gn_go").click().run()
    assert_clean(at)
    fig = next(c for c in charts(at) if "Gauss-Newton" in c["layout"]["title"]["text"])
    assert [t["name"].split(" ")[0] for t in fig["data"]] == ["Hessian", "Gauss-Newton", "|residual"]


def test_spectra_trajectory_without_snapshots_links_to_explore():
    (run,) = store_runs(tiny_spec())
    at = app("pages/spectra.py", {"run": run.key, "tab": "Landscape", "dirs": "trajectory"})
    assert_clean(at)
    assert any("kept no weight snapshots" in i.value for i in at.info)


def test_coord_check_page_draws_sp_and_mup_and_names_bad_settings(monkeypatch):
    at = app("pages/coord_check.py", SMALL_CHECK)
    assert_clean(at)
    fig = charts(at)[0]
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert "standard parametrisation (SP)" in titles and "muP" in titles
    assert len(fig["data"]) == 2 * 3  # depth 2: input, hidden and read-out layer in each panel
    slopes = at.dataframe[0].value
    assert {"sp", "mup"} <= set(slopes.columns)
    at = app("pages/coord_check.py", SMALL_CHECK | {"widths": ["16"]})
    assert any("at least two widths" in e for e in errors(at))
    monkeypatch.setenv("LEARNMECH_PROFILE", "hosted")
    at = app("pages/coord_check.py", SMALL_CHECK | {"widths": ["16", "2048"]})
    assert_clean(at)
    assert any("model.width must be between 1 and 1024 (got 2048)" in e for e in errors(at)), errors(at)


def upload(at, name: str, payload: bytes):
    at.file_uploader(key="checkpoint").upload(name, payload, "application/octet-stream")
    at.run()


def test_your_model_analyses_a_safetensors_file():
    g = torch.Generator().manual_seed(0)
    payload = save({"fc1.weight": torch.randn(64, 32, generator=g), "fc1.bias": torch.zeros(64),
                    "fc2.weight": torch.randn(10, 64, generator=g)})
    at = app("pages/your_model.py")
    upload(at, "model.safetensors", payload)
    assert_clean(at)
    assert [m.label for m in at.metric][:2] == ["Layers analysed", "Mean α"]
    assert at.metric[0].value == "2"
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert any("heavy-tailed is each layer" in t for t in titles) and any("fc1.weight" in t for t in titles), titles
    table = at.dataframe[0].value
    assert list(table["layer"]) == ["fc1.weight", "fc2.weight"] and "alpha_weighted" in table


@pytest.mark.parametrize("name, payload, message", [
    ("model.safetensors", pickle.dumps({"w": 1}), "is a Python pickle"),
    ("model.safetensors", b"not a checkpoint at all", "is not a safetensors file"),
    ("model.safetensors", b"", "is empty"),
])
def test_your_model_refuses_bad_files_with_the_reason(name, payload, message):
    at = app("pages/your_model.py")
    upload(at, name, payload)
    assert_clean(at)
    assert any(message in e for e in errors(at)), errors(at)


def test_your_model_hosted_cap_and_stored_run(monkeypatch):
    monkeypatch.setenv("LEARNMECH_PROFILE", "hosted")
    at = app("pages/your_model.py")
    upload(at, "big.safetensors", save({"w": torch.zeros(1200, 1200)}))  # 5.8 MB
    assert any("accepts files up to 5 MB" in e for e in errors(at)), errors(at)
    (run,) = store_runs(tiny_spec(**{"model.width": 16, "model.depth": 2}))
    at = app("pages/your_model.py", {"source": "run", "run": run.key})
    assert_clean(at)
    assert at.dataframe[0].value["layer"].tolist() == ["layers.1.weight"]  # 16x16; 2x16 and 16x2 are too small
