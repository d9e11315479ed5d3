"""What a stored run's files hold: meta.json's environment and traceback, typed Parquet (also when
empty), the in-place migration of untyped files, and the whole gallery read as one pyarrow dataset."""

import json
import platform
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import torch

import learnmech_core
from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, train
from learnmech_core.cli import main
from learnmech_core.run_table import runs_dataset
from learnmech_core.store import SPECTRA_SCHEMA, RunStore, gallery_root, migrate_parquet
from learnmech_core.train import SPECTRA_COLUMNS, Run

ROOT = Path(__file__).resolve().parent.parent
TINY = RunSpec(model=ModelSpec(width=8, depth=1), data=DataSpec(name="moons", n_train=32, n_test=8),
               optim=OptimSpec(steps=6), probes=ProbeSpec(sharpness_every=3))


def test_meta_records_versions_device_and_commit(tmp_path):
    store = RunStore(tmp_path)
    key = store.put(train(TINY))
    env = json.loads((tmp_path / "runs" / key / "meta.json").read_text())["environment"]
    assert env["learnmech"] == learnmech_core.__version__ and env["torch"] == torch.__version__
    assert env["python"] == platform.python_version() and env["device"].startswith("cpu: ")
    if (ROOT / ".git").exists():
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert env["git_commit"] == head.strip() and isinstance(env["git_dirty"], bool)


def test_imported_run_keeps_the_environment_it_was_made_in(tmp_path, monkeypatch):
    first = RunStore(tmp_path / "a")
    key = first.put(train(TINY))
    made_in = first.get(key).environment
    monkeypatch.setattr("learnmech_core.store.environment", lambda device: {"device": "elsewhere"})
    second = RunStore(tmp_path / "b")
    second.import_bytes(first.export_bytes(key))
    assert json.loads((tmp_path / "b" / "runs" / key / "meta.json").read_text())["environment"] == made_in
    assert made_in["device"] != "elsewhere"


def test_parquet_columns_are_typed_even_when_empty(tmp_path):
    store = RunStore(tmp_path)
    run = train(TINY)
    run.history["sharpness_hvps"] = run.history["sharpness_hvps"].fillna(0).astype("int64")  # ints on some runs
    key = store.put(run)
    folder = tmp_path / "runs" / key
    assert pq.read_schema(folder / "spectra.parquet").remove_metadata().equals(SPECTRA_SCHEMA)  # no spectra probes
    history = pq.read_schema(folder / "history.parquet")
    assert history.field("step").type == pa.int64() and history.field("sharpness_hvps").type == pa.float64()
    assert all(f.type == pa.float64() for f in history if f.name != "step")
    empty = Run(spec=TINY.replace(seed=1), history=pd.DataFrame(), status="failed", message="X: y")
    schema = pq.read_schema(tmp_path / "runs" / store.put(empty) / "history.parquet")
    assert [(f.name, f.type) for f in schema] == [("step", pa.int64()), ("loss", pa.float64())]
    back = store.get(key)
    pd.testing.assert_frame_equal(back.history, run.history, check_dtype=False)


def test_migration_types_old_files_in_place_and_keeps_values(tmp_path, capsys):
    store = RunStore(tmp_path)
    with_spectra = train(TINY.replace(**{"probes.esd_every": 3}))
    keys = [store.put(train(TINY)), store.put(with_spectra)]
    old = {}
    for key in keys:  # write them as learnmech wrote them before typing: pandas' own inference
        folder = tmp_path / "runs" / key
        spectra = store.get(key).spectra
        frame = spectra if len(spectra) else pd.DataFrame(columns=SPECTRA_COLUMNS)
        frame.to_parquet(folder / "spectra.parquet", index=False)
        old[key] = pd.read_parquet(folder / "spectra.parquet")
    assert pq.read_schema(tmp_path / "runs" / keys[0] / "spectra.parquet").field("step").type == pa.null()
    assert main(["--store", str(tmp_path), "migrate"]) == 0
    assert capsys.readouterr().out.startswith("2 Parquet file(s) rewritten")
    for key in keys:
        path = tmp_path / "runs" / key / "spectra.parquet"
        assert pq.read_schema(path).remove_metadata().equals(SPECTRA_SCHEMA)
        pd.testing.assert_frame_equal(pd.read_parquet(path), old[key], check_dtype=False)
    assert len(old[keys[1]]) > 0 and migrate_parquet(tmp_path) == []  # values kept; a second pass changes nothing


def test_whole_gallery_reads_as_one_pyarrow_dataset():
    runs = gallery_root() / "runs"
    spectra_files = sorted(str(p) for p in runs.glob("*/spectra.parquet"))
    assert len(spectra_files) > 100
    spectra = ds.dataset(spectra_files, format="parquet").to_table()  # no schema given: every file agrees
    assert spectra.schema.remove_metadata().equals(SPECTRA_SCHEMA)
    assert spectra.num_rows == sum(pq.read_metadata(p).num_rows for p in spectra_files)
    history = runs_dataset(gallery_root()).to_table()
    files = sorted(runs.glob("*/history.parquet"))
    assert history.num_rows == sum(pq.read_metadata(p).num_rows for p in files)
    assert set(history.column("key").to_pylist()) == {p.parent.name for p in files}
    key = files[len(files) // 2].parent.name
    one = history.filter(pc.equal(history.column("key"), key)).to_pandas()
    expected = pd.read_parquet(runs / key / "history.parquet")
    assert one["loss"].tolist() == expected["loss"].tolist() and one["step"].tolist() == expected["step"].tolist()
