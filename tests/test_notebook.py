"""The notebook API: load_runs' tidy table against the stored histories, its filters, short reprs,
figure builders without streamlit, and the train -> load -> plot example run end to end."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

import learnmech_core as lm
from learnmech_core.store import RunStore, gallery_root

ROOT = Path(__file__).resolve().parent.parent
TINY = lm.RunSpec(model=lm.ModelSpec(width=8, depth=1), data=lm.DataSpec(name="moons", n_train=32, n_test=8),
                  optim=lm.OptimSpec(steps=5))


def _gallery_keys_tagged(tag: str) -> set[str]:
    runs = gallery_root() / "runs"
    return {p.name for p in runs.iterdir() if tag in json.loads((p / "meta.json").read_text()).get("tags", [])}


def test_load_runs_is_one_row_per_run_and_step_with_spec_columns(tmp_path):
    store = RunStore(tmp_path)
    runs = {store.put(lm.train(TINY.replace(**{"optim.lr": lr})), tags=["mine"]): lr for lr in (0.05, 0.1)}
    table = lm.load_runs(store=tmp_path, source="store")
    assert len(table) == 2 * 6 and set(table["key"]) == set(runs)
    assert list(table.columns[:4]) == ["key", "source", "status", "tags"]
    assert {"model.arch", "model.width", "optim.lr", "data.name", "seed", "step", "loss"} <= set(table.columns)
    for key, lr in runs.items():
        rows = table[table["key"] == key]
        assert (rows["optim.lr"] == lr).all() and (rows["model.width"] == 8).all() and (rows["source"] == "store").all()
        assert rows["loss"].tolist() == store.get(key).history["loss"].tolist()
        assert rows["step"].tolist() == list(range(6)) and (rows["tags"] == "mine").all()


def test_load_runs_filters_and_sources(tmp_path):
    store = RunStore(tmp_path)
    store.put(lm.train(TINY), tags=["mine"])
    gallery = lm.load_runs(source="gallery")
    assert gallery["key"].nunique() == len(list((gallery_root() / "runs").iterdir()))
    assert set(gallery["source"]) == {"gallery"}
    mine = store.list()["key"].tolist()
    both = lm.load_runs(store=tmp_path, keys=mine + gallery["key"].iloc[:1].tolist())
    assert both.groupby("source")["key"].nunique().to_dict() == {"gallery": 1, "store": 1}
    eos = lm.load_runs(phenomenon="edge_of_stability")
    assert set(eos["key"]) == _gallery_keys_tagged("phenomenon:edge_of_stability") != set()
    cnn = lm.load_runs(source="gallery", arch="cnn", status=["ok", "diverged"])
    assert len(cnn) and set(cnn["model.arch"]) == {"cnn"}
    assert set(lm.load_runs(store=tmp_path, tag="mine")["source"]) == {"store"}
    spectra = lm.load_runs(source="gallery", table="spectra", phenomenon="heavy_tailed_spectra")
    assert {"kind", "layer", "index", "value", "model.arch"} <= set(spectra.columns) and len(spectra)
    assert lm.load_runs(store=tmp_path, source="store", table="spectra").empty  # a run without spectra: no rows
    empty = lm.load_runs(store=tmp_path, source="store", arch="transformer")
    assert empty.empty and list(empty.columns) == ["key", "source", "status", "tags", "step"]
    with pytest.raises(ValueError, match="source must be one of store, gallery"):
        lm.load_runs(source="cloud")
    with pytest.raises(ValueError, match="unknown phenomenon 'edge'"):
        lm.load_runs(phenomenon="edge")


def test_a_run_in_store_and_gallery_is_listed_once_from_the_store(tmp_path):
    key = next(p.name for p in sorted((gallery_root() / "runs").iterdir()))
    store = RunStore(tmp_path)
    store.import_bytes(RunStore(gallery_root(), readonly=True).export_bytes(key))
    rows = lm.load_runs(store=tmp_path, keys=[key])
    assert set(rows["source"]) == {"store"} and rows["step"].is_unique


def test_short_reprs():
    spec = TINY.replace(**{"optim.lr": 0.2})
    assert repr(spec) == ("RunSpec(model=ModelSpec(width=8, depth=1), data=DataSpec(name='moons', n_train=32, "
                          "n_test=8), optim=OptimSpec(lr=0.2, steps=5))")
    assert eval(repr(spec), vars(lm)) == spec and repr(lm.RunSpec()) == "RunSpec()"
    run = lm.train(spec)
    assert run.weights and len(repr(run)) < 400  # was 15,700 characters with the weights' arrays
    assert repr(run).startswith(f"Run(key='{spec.key()}', status='ok', steps=5, final_loss=")
    assert repr(RunStore(gallery_root(), readonly=True)) == f"RunStore({str(gallery_root())!r}, readonly=True)"


def test_figure_builders_need_no_streamlit():
    # the core (figure builders included) imports only itself and libraries that never import streamlit
    for path in (ROOT / "learnmech_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(n.split(".")[0] in ("streamlit", "learnmech_app") for n in names), path
    from learnmech_core.plots.runs import curves_figure

    assert isinstance(curves_figure([lm.train(TINY)], "loss"), go.Figure)


def test_example_train_load_plot(tmp_path):
    env = {**os.environ, "LEARNMECH_HOME": str(tmp_path / "store")}
    html = tmp_path / "figure.html"
    done = subprocess.run([sys.executable, "-m", "examples.train_load_plot", str(html)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    table = lm.load_runs(store=tmp_path / "store", source="store", tag="example")
    last = table.groupby("optim.lr")[["loss", "sharpness"]].last()
    assert list(last.index) == [0.1, 0.4] and len(table) == 2 * 201
    printed = pd.read_csv(pd.io.common.StringIO(done.stdout), sep=r"\s+", skiprows=2, header=None,
                          names=["lr", "loss", "sharpness"])
    assert printed["lr"].tolist() == [0.1, 0.4]  # the printed table is the loaded one
    assert printed["loss"].round(6).tolist() == last["loss"].round(6).tolist()
    text = html.read_text()
    assert "plotly" in text and text.count('"name":') >= 2  # one trace per run (and the 2/eta lines)
