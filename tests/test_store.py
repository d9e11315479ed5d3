"""Run store: round trips, atomic writes under SIGKILL, concurrent writers, corrupt files, import checks."""

import io
import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, train
from learnmech_core.store import RunStore, read_run_file

ROOT = Path(__file__).resolve().parent.parent


def tiny(seed=0, steps=6, **probes):
    return RunSpec(model=ModelSpec(width=8, depth=1), data=DataSpec(n_train=32, n_test=16),
                   optim=OptimSpec(steps=steps, eval_every=2), probes=ProbeSpec(**probes), seed=seed)


def test_round_trip_keeps_every_number(tmp_path):
    store = RunStore(tmp_path)
    run = train(tiny(layer_norms=True))
    run.spectra.loc[0] = [0, "weight_esd", "layers.0", 0, 1.5]
    key = store.put(run, tags=["demo"])
    back = store.get(key)
    assert back.spec == run.spec and back.status == "ok"
    assert back.history.equals(run.history)
    assert back.spectra.astype(str).equals(run.spectra.astype(str))
    assert all(np.array_equal(back.weights[k], run.weights[k]) for k in run.weights)
    table = store.list()
    assert table.loc[0, "key"] == key and table.loc[0, "tags"] == "demo" and table.loc[0, "status"] == "ok"
    assert store.list(arch="mlp", tag="demo").shape[0] == 1 and store.list(tag="other").empty
    with pytest.raises(ValueError, match="cannot filter runs by 'colour'"):
        store.list(colour="red")


def test_get_or_train_trains_once(tmp_path, monkeypatch):
    import importlib

    train_module = importlib.import_module("learnmech_core.train")  # the package binds `train` to the function
    store = RunStore(tmp_path)
    first = train_module.get_or_train(store, tiny())
    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("trained again"))
    assert train_module.get_or_train(store, tiny(), tags=["again"]).history.equals(first.history)
    assert store.list(tag="again").shape[0] == 1


def test_stopped_runs_are_not_stored(tmp_path):
    from learnmech_core.train import get_or_train

    store = RunStore(tmp_path)
    run = get_or_train(store, tiny(steps=50), should_stop=lambda: True)
    assert run.status == "stopped" and not store.has(run.key)


def test_the_store_imports_nothing_that_trains():
    import ast

    tree = ast.parse((ROOT / "learnmech_core" / "store.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not imported & {"train", "ensemble", "sweep", "probes", "learnmech_core.train"}


WRITER = """
import sys
from learnmech_core import DataSpec, ModelSpec, OptimSpec, RunSpec, train
from learnmech_core.store import RunStore
store = RunStore(sys.argv[1])
base = train(RunSpec(model=ModelSpec(width=8, depth=1), data=DataSpec(n_train=32, n_test=8),
                     optim=OptimSpec(steps=100)))
print("ready", flush=True)
for seed in range(int(sys.argv[2]), int(sys.argv[2]) + int(sys.argv[3])):
    base.spec = base.spec.replace(seed=seed)
    store.put(base)
print("done", flush=True)
"""


def _writer(root, start, count):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(start), str(count)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)


def test_a_writer_killed_mid_write_leaves_only_whole_runs(tmp_path):
    for attempt in range(2):
        proc = _writer(tmp_path, attempt * 1000, 1000)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.4 + 0.3 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = RunStore(tmp_path)
    table = store.list()
    assert len(table) > 0
    for key in table["key"]:
        run = store.get(key)
        assert run is not None and len(run.history) == 101
    on_disk = {p.name for p in (tmp_path / "runs").iterdir()}
    assert on_disk == set(table["key"])  # nothing half-written is visible under runs/
    assert store.problems == []


def test_two_concurrent_writer_processes_lose_nothing(tmp_path):
    procs = [_writer(tmp_path, 0, 12), _writer(tmp_path, 6, 12)]  # overlapping keys 6..11 too
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip().endswith("done")
    store = RunStore(tmp_path)
    assert sorted(store.spec(k).seed for k in store.list()["key"]) == list(range(18))
    assert all(store.get(k) is not None for k in store.list()["key"])


def test_corrupt_file_is_reported_and_skipped(tmp_path):
    store = RunStore(tmp_path)
    good, bad = store.put(train(tiny(seed=1))), store.put(train(tiny(seed=2)))
    (tmp_path / "runs" / bad / "history.parquet").write_bytes(b"not parquet at all")
    assert store.get(bad) is None and store.get(good) is not None
    assert len(store.problems) == 1 and bad in store.problems[0]
    assert set(store.list()["key"]) == {good, bad}  # the listing itself still works


def test_export_import_and_validation(tmp_path):
    store = RunStore(tmp_path / "a")
    key = store.put(train(tiny()))
    payload = store.export_bytes(key)
    other = RunStore(tmp_path / "b")
    assert other.import_bytes(payload) == key and other.get(key).history.equals(store.get(key).history)
    with pytest.raises(ValueError, match="not a zip archive"):
        other.import_bytes(b"garbage")

    def rezip(change):
        archive = zipfile.ZipFile(io.BytesIO(payload))
        files = {n: archive.read(n) for n in archive.namelist()}
        change(files)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for n, b in files.items():
                zf.writestr(n, b)
        return buf.getvalue()

    with pytest.raises(ValueError, match="unexpected file 'evil.pkl'"):
        read_run_file(rezip(lambda f: f.update({"evil.pkl": b"x"})))
    spec = json.loads(zipfile.ZipFile(io.BytesIO(payload)).read("spec.json"))
    spec["optim"]["lr"] = 0.5
    with pytest.raises(ValueError, match="does not match its spec"):
        read_run_file(rezip(lambda f: f.update({"spec.json": json.dumps(spec).encode()})))
    buf = io.BytesIO()
    np.savez(buf, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="weights.npz refused: Object arrays cannot be loaded"):
        read_run_file(rezip(lambda f: f.update({"weights.npz": buf.getvalue()})))
    with pytest.raises(ValueError, match="model.width must be between 1 and 4096"):
        spec = json.loads(zipfile.ZipFile(io.BytesIO(payload)).read("spec.json"))
        spec["model"]["width"] = 0
        read_run_file(rezip(lambda f: f.update({"spec.json": json.dumps(spec).encode()})))
    assert len(other.list()) == 1  # nothing bad was stored


def test_delete_and_readonly_gallery_listing(tmp_path):
    store = RunStore(tmp_path)
    key = store.put(train(tiny()), tags=["phenomenon:demo"])
    readonly = RunStore(tmp_path, readonly=True)
    assert list(readonly.list()["key"]) == [key] and readonly.list(tag="phenomenon:demo").shape[0] == 1
    with pytest.raises(ValueError, match="read-only"):
        readonly.put(train(tiny(seed=3)))
    assert store.delete(key) and not store.has(key) and store.list().empty and not store.delete(key)
