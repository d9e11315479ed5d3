"""Run store: finished runs on disk keyed by `spec.key()`; SQLite index, Parquet histories.

Layout under the root (`LEARNMECH_HOME`, default `~/.cache/learnmech`):

    index.sqlite                  one row per run: key, spec fields worth filtering on, status, tags
    runs/<key>/spec.json          the RunSpec (canonical JSON)
    runs/<key>/meta.json          status, message (and traceback of a failed run), timings, probe errors,
                                  tags, created, environment (learnmech/torch/numpy/Python versions,
                                  device name, git commit of a checkout)
    runs/<key>/history.parquet    run.history: `step` int64, every other column float64 (bool kept)
    runs/<key>/spectra.parquet    run.spectra: SPECTRA_SCHEMA, typed even when empty
    runs/<key>/weights.npz        final weights (numpy arrays only; loaded with allow_pickle=False)
    runs/<key>/snapshots.npz      weight snapshots (probes.snapshot_every): step (T,), weights (T, n) float32

Writes are atomic: a run is written into `tmp/` and renamed into `runs/` in one step, so a crash
leaves either the whole run or nothing visible (stale `tmp/` entries are cleaned up later). The index
is repaired from the run folders when they disagree (a writer killed between rename and index insert).
Concurrent writers from several processes are safe: SQLite serialises index updates (WAL, busy
timeout) and a second writer of the same key keeps the run already there. A corrupt run file is
reported in `store.problems` and skipped, never fatal. Export/import use one zip of the same files;
nothing is ever unpickled. The typed Parquet files let a whole store (or the gallery) be read as one
`pyarrow.dataset`; `migrate_parquet` (`learnmech migrate`) rewrites files written before they were typed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import time
import uuid
import zipfile
from collections.abc import Iterable
from contextlib import closing
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .config import RunSpec
from .environment import environment
from .records import SPECTRA_COLUMNS, STATUSES, Run

_MEMBERS = ("spec.json", "meta.json", "history.parquet", "spectra.parquet", "weights.npz", "snapshots.npz")
MAX_IMPORT_BYTES = 200 * 1024 * 1024
SPECTRA_SCHEMA = pa.schema([("step", pa.int64()), ("kind", pa.string()), ("layer", pa.string()),
                            ("index", pa.int64()), ("value", pa.float64())])
INDEX_COLUMNS = ["key", "arch", "dataset", "optimizer", "loss", "lr", "width", "depth", "param", "activation",
                 "seed", "steps", "status", "final_loss", "final_test_acc", "created", "tags"]


def default_root() -> Path:
    """LEARNMECH_HOME, else ~/.cache/learnmech (XDG_CACHE_HOME respected)."""
    if os.environ.get("LEARNMECH_HOME"):
        return Path(os.environ["LEARNMECH_HOME"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "learnmech"


def gallery_root() -> Path:
    """The shipped, precomputed gallery: LEARNMECH_GALLERY when set, else the package data folder
    `learnmech_core/gallery`, found through importlib.resources (the same folder in a checkout and an
    editable install; inside site-packages after `pip install .`)."""
    if os.environ.get("LEARNMECH_GALLERY"):
        return Path(os.environ["LEARNMECH_GALLERY"]).expanduser()
    return Path(str(resources.files(__package__) / "gallery"))  # pip installs packages unzipped: a real folder


class RunStore:
    """Runs on disk under one root folder. Safe to share between threads and processes."""

    def __init__(self, root: str | Path | None = None, readonly: bool = False):
        self.root = Path(root) if root is not None else default_root()
        self.readonly = readonly
        self.problems: list[str] = []
        if not readonly:
            (self.root / "runs").mkdir(parents=True, exist_ok=True)
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as db, db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS runs (key TEXT PRIMARY KEY, arch TEXT, dataset TEXT, optimizer TEXT,"
                    " loss TEXT, lr REAL, width INTEGER, depth INTEGER, param TEXT, activation TEXT, seed INTEGER,"
                    " steps INTEGER, status TEXT, final_loss REAL, final_test_acc REAL, created REAL, tags TEXT,"
                    " spec TEXT)"
                )

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r}{', readonly=True' if self.readonly else ''})"

    # ------------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.root / "index.sqlite", timeout=60.0)

    def _dir(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"run key must be hexadecimal (got {key!r})")
        return self.root / "runs" / key

    # ------------------------------------------------------------------------------------------
    def put(self, run: Run, tags: Iterable[str] = ()) -> str:
        """Write a run atomically (an existing run of the same key is kept, its tags merged)."""
        if self.readonly:
            raise ValueError(f"the store at {self.root} is read-only")
        key = run.spec.key()
        final = self._dir(key)
        tags = sorted(set(tags))
        if final.exists() and self._readable(final):
            self._index(key, tags=tags)
            return key
        tmp = self.root / "tmp" / f"{key}-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            for name, payload in _serialise(run, tags).items():
                (tmp / name).write_bytes(payload)
            _fsync_dir(tmp)
            if final.exists():  # unreadable leftover: move it aside, then take its place
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final.exists() and self._readable(final)):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._index(key, tags=tags)
        return key

    def _index(self, key: str, tags: list[str] = ()) -> None:
        meta = json.loads((self._dir(key) / "meta.json").read_text())
        spec = RunSpec.from_json((self._dir(key) / "spec.json").read_text())
        with closing(self._connect()) as db, db:
            old = db.execute("SELECT tags FROM runs WHERE key=?", (key,)).fetchone()
            stored = set((old[0] or "").split(",") if old else [])
            merged = sorted((set(meta.get("tags", [])) | set(tags) | stored) - {""})
            row = _index_row(spec, meta, merged)
            db.execute(f"INSERT OR REPLACE INTO runs VALUES ({','.join('?' * len(row))})", row)

    def _readable(self, folder: Path) -> bool:
        return all((folder / n).exists() for n in ("spec.json", "meta.json", "history.parquet"))

    # ------------------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        """Whether a complete run with this key is stored."""
        return self._readable(self._dir(key))

    def get(self, key: str) -> Run | None:
        """The stored run, or None when absent; a corrupt run is reported in `problems` and gives None."""
        folder = self._dir(key)
        if not folder.exists():
            return None
        try:
            return _deserialise({n: (folder / n).read_bytes() for n in _MEMBERS if (folder / n).exists()})
        except Exception as err:  # corrupt files are reported, not fatal
            self.problems.append(f"run {key} could not be read ({type(err).__name__}: {err}); skipped")
            return None

    def table(self, key: str, name: str) -> pd.DataFrame:
        """One table of a stored run, "history" or "spectra", without reading the rest (weights)."""
        if name not in ("history", "spectra"):
            raise ValueError(f"table must be history or spectra (got {name!r})")
        return pd.read_parquet(self._dir(key) / f"{name}.parquet")

    def list(self, **filters) -> pd.DataFrame:
        """Index rows (newest first), optionally filtered by equality on index columns or `tag=`."""
        if self.readonly:
            table = self._scan()
        elif not (self.root / "index.sqlite").exists():
            return pd.DataFrame(columns=INDEX_COLUMNS)
        else:
            self._repair()
            with closing(self._connect()) as db:
                table = pd.read_sql_query(f"SELECT {','.join(INDEX_COLUMNS)} FROM runs ORDER BY created DESC", db)
        tag = filters.pop("tag", None)
        for name, value in filters.items():
            if name not in INDEX_COLUMNS:
                raise ValueError(f"cannot filter runs by {name!r}; use one of {', '.join(INDEX_COLUMNS)} or tag")
            table = table[table[name] == value]
        if tag is not None:
            table = table[table["tags"].fillna("").str.split(",").apply(lambda ts: tag in ts)]
        return table.reset_index(drop=True)

    def _scan(self) -> pd.DataFrame:
        """Index rows read from the run folders themselves (read-only stores such as the gallery)."""
        rows = []
        folder = self.root / "runs"
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            try:
                meta = json.loads((entry / "meta.json").read_text())
                spec = RunSpec.from_json((entry / "spec.json").read_text())
                rows.append(_index_row(spec, meta, meta.get("tags", []))[:-1])
            except Exception as err:
                self.problems.append(f"run {entry.name} is not readable ({type(err).__name__}: {err}); skipped")
        table = pd.DataFrame(rows, columns=INDEX_COLUMNS)
        return table.sort_values("created", ascending=False) if len(table) else table

    def spec(self, key: str) -> RunSpec:
        """The stored spec of a run (cheap: reads spec.json only)."""
        return RunSpec.from_json((self._dir(key) / "spec.json").read_text())

    def _repair(self) -> None:
        """Index runs that are on disk but not indexed; drop index rows whose folder is gone; clean tmp/."""
        on_disk = {p.name for p in (self.root / "runs").iterdir() if p.is_dir()}
        with closing(self._connect()) as db:
            indexed = {r[0] for r in db.execute("SELECT key FROM runs")}
        for key in sorted(on_disk - indexed):
            try:
                self._index(key)
            except Exception as err:
                self.problems.append(f"run {key} is not readable ({type(err).__name__}: {err}); skipped")
        gone = indexed - on_disk
        if gone:
            with closing(self._connect()) as db, db:
                db.executemany("DELETE FROM runs WHERE key=?", [(k,) for k in gone])
        cutoff = time.time() - 3600
        for entry in (self.root / "tmp").iterdir():
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)

    def delete(self, key: str) -> bool:
        """Remove a run; True if it existed."""
        if self.readonly:
            raise ValueError(f"the store at {self.root} is read-only")
        folder = self._dir(key)
        existed = folder.exists()
        if existed:
            trash = self.root / "tmp" / f"deleted-{key}-{uuid.uuid4().hex}"
            os.rename(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM runs WHERE key=?", (key,))
        return existed

    # ------------------------------------------------------------------------------------------
    def export_bytes(self, key: str) -> bytes:
        """One zip holding the run's files."""
        folder = self._dir(key)
        if not self._readable(folder):
            raise ValueError(f"no stored run with key {key}")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in _MEMBERS:
                if (folder / name).exists():
                    zf.writestr(name, (folder / name).read_bytes())
        return buf.getvalue()

    def export(self, key: str, path: str | Path) -> Path:
        """Write the run to one .zip file."""
        path = Path(path)
        path.write_bytes(self.export_bytes(key))
        return path

    def import_bytes(self, payload: bytes, tags: Iterable[str] = ()) -> str:
        """Validate a run file (zip from `export`) and store it; a bad file raises ValueError, stores nothing."""
        run = read_run_file(payload)
        return self.put(run, tags=tags)

    def import_file(self, path: str | Path, tags: Iterable[str] = ()) -> str:
        """Import a run from a .zip file written by `export`."""
        return self.import_bytes(Path(path).read_bytes(), tags=tags)

    # ------------------------------------------------------------------------------------------
    def tag(self, key: str, tags: Iterable[str]) -> None:
        """Add tags to a stored run's index entry (`train.get_or_train` tags a run it finds)."""
        self._index(key, tags=list(tags))


# ----------------------------------------------------------------------------------------------
# (de)serialisation


def _index_row(spec: RunSpec, meta: dict, tags: list[str]) -> tuple:
    return (spec.key(), spec.model.arch, spec.data.name, spec.optim.name, spec.optim.loss, spec.optim.lr,
            spec.model.width, spec.model.depth, spec.model.param, spec.model.activation, spec.seed,
            spec.optim.steps, meta["status"], meta.get("final_loss"), meta.get("final_test_acc"),
            meta.get("created", time.time()), ",".join(tags), spec.to_json())


def _serialise(run: Run, tags: list[str]) -> dict[str, bytes]:
    meta = {
        "key": run.spec.key(), "status": run.status, "message": run.message, "timings": run.timings,
        "probe_errors": run.probe_errors, "tags": tags, "created": time.time(),
        "final_loss": _finite_or_none(run.final("loss")), "final_test_acc": _finite_or_none(run.final("test_acc")),
        "environment": run.environment or environment(run.spec.device),  # an imported run keeps its own
    }
    if run.traceback:
        meta["traceback"] = run.traceback
    out = {
        "spec.json": run.spec.to_json(indent=1).encode(),
        "meta.json": json.dumps(meta, indent=1, default=float).encode(),
        "history.parquet": _parquet(typed_history(run.history)),
        "spectra.parquet": _parquet(typed_spectra(run.spectra)),
    }
    if run.weights:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k.replace(".", "__"): v for k, v in run.weights.items()})
        out["weights.npz"] = buf.getvalue()
    if run.snapshots is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, step=run.snapshots["step"], weights=run.snapshots["weights"])
        out["snapshots.npz"] = buf.getvalue()
    return out


def _finite_or_none(x: float):
    return float(x) if np.isfinite(x) else None


def typed_history(history: pd.DataFrame) -> pa.Table:
    """The history as an Arrow table with fixed types: `step` int64, bool columns bool, every other column
    float64 (counts such as sharpness_hvps too, so that they agree between runs with and without NaN);
    an empty history still has typed `step` and `loss` columns."""
    if not len(history.columns):
        history = pd.DataFrame({"step": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64")})
    fields, arrays = [], []
    for name in history.columns:
        column = history[name]
        if name == "step":
            kind = pa.int64()
        elif pd.api.types.is_bool_dtype(column):
            kind = pa.bool_()
        else:
            kind, column = pa.float64(), pd.to_numeric(column, errors="raise").astype("float64")
        fields.append(pa.field(str(name), kind))
        arrays.append(pa.array(column.to_numpy(), type=kind, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def typed_spectra(spectra: pd.DataFrame) -> pa.Table:
    """The spectra as an Arrow table with SPECTRA_SCHEMA (also when there are no rows)."""
    frame = spectra if len(spectra.columns) else pd.DataFrame(columns=SPECTRA_COLUMNS)
    return pa.Table.from_pandas(frame[SPECTRA_COLUMNS].reset_index(drop=True), schema=SPECTRA_SCHEMA,
                                preserve_index=False)


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def migrate_parquet(root: str | Path | None = None) -> list[Path]:
    """Rewrite, in place, the history and spectra files of a store (default: the user's store) whose
    columns are not typed as `typed_history` / `typed_spectra` write them (files from before 0.1 have
    null-typed columns when empty). Values are unchanged; files already typed are left alone. Returns
    the rewritten paths. `learnmech --store FOLDER migrate` runs it (FOLDER: learnmech_core/gallery for
    the shipped gallery)."""
    changed = []
    folder = Path(root if root is not None else default_root()) / "runs"
    for path in sorted(folder.glob("*/history.parquet")) + sorted(folder.glob("*/spectra.parquet")):
        frame = pd.read_parquet(path)
        table = typed_history(frame) if path.name == "history.parquet" else typed_spectra(frame)
        if pq.read_schema(path).remove_metadata().equals(table.schema):
            continue
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        tmp.write_bytes(_parquet(table))
        os.replace(tmp, path)
        changed.append(path)
    return changed


def _deserialise(files: dict[str, bytes]) -> Run:
    missing = [n for n in ("spec.json", "meta.json", "history.parquet") if n not in files]
    if missing:
        raise ValueError(f"run file lacks {', '.join(missing)}")
    spec = RunSpec.from_json(files["spec.json"].decode())
    meta = json.loads(files["meta.json"].decode())
    if not isinstance(meta, dict) or meta.get("status") not in STATUSES:
        raise ValueError(f"meta.json status must be one of {', '.join(STATUSES)}")
    if meta.get("key") not in (None, spec.key()):
        raise ValueError(f"meta.json key {meta.get('key')} does not match its spec ({spec.key()})")
    history = pd.read_parquet(io.BytesIO(files["history.parquet"]))
    if len(history) and ("step" not in history or "loss" not in history):
        raise ValueError("history must have step and loss columns")
    for column in history.columns:
        if not pd.api.types.is_numeric_dtype(history[column]):
            raise ValueError(f"history column {column!r} is not numeric")
    spectra = (pd.read_parquet(io.BytesIO(files["spectra.parquet"])) if "spectra.parquet" in files
               else pd.DataFrame(columns=SPECTRA_COLUMNS))
    if list(spectra.columns) != SPECTRA_COLUMNS:
        raise ValueError(f"spectra must have columns {SPECTRA_COLUMNS}")
    weights = None
    if "weights.npz" in files:
        try:
            with np.load(io.BytesIO(files["weights.npz"]), allow_pickle=False) as npz:
                weights = {k.replace("__", "."): npz[k] for k in npz.files}
        except ValueError as err:
            raise ValueError(f"weights.npz refused: {err}") from None
    return Run(spec=spec, history=history, spectra=spectra, status=meta["status"], timings=meta.get("timings", {}),
               message=meta.get("message", ""), weights=weights, probe_errors=meta.get("probe_errors", []),
               traceback=meta.get("traceback", ""), environment=meta.get("environment", {}),
               snapshots=_snapshots(files["snapshots.npz"]) if "snapshots.npz" in files else None)


def _snapshots(payload: bytes) -> dict[str, np.ndarray]:
    """snapshots.npz: step (T,) integers and weights (T, n) floats, nothing else."""
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            out = {k: npz[k] for k in npz.files}
    except ValueError as err:
        raise ValueError(f"snapshots.npz refused: {err}") from None
    step, weights = out.get("step"), out.get("weights")
    if (set(out) != {"step", "weights"} or step.ndim != 1 or weights.ndim != 2 or len(step) != len(weights)
            or step.dtype.kind not in "iu" or weights.dtype.kind != "f"):
        raise ValueError("snapshots.npz must hold step (T,) integers and weights (T, n) floats")
    return {"step": step.astype(np.int64), "weights": weights}


def read_run_file(payload: bytes) -> Run:
    """Parse and validate an exported run (.zip); raises ValueError with the reason."""
    if len(payload) > MAX_IMPORT_BYTES:
        raise ValueError(f"run file is {len(payload) / 1e6:.1f} MB; at most {MAX_IMPORT_BYTES / 1e6:.0f} MB")
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as zf:
            names = zf.namelist()
            unknown = [n for n in names if n not in _MEMBERS]
            if unknown:
                raise ValueError(f"unexpected file {unknown[0]!r} in run file; allowed: {', '.join(_MEMBERS)}")
            if sum(i.file_size for i in zf.infolist()) > MAX_IMPORT_BYTES:
                raise ValueError("run file expands beyond the size limit")
            files = {n: zf.read(n) for n in names}
    except zipfile.BadZipFile:
        raise ValueError("run file is not a zip archive written by learnmech export") from None
    try:
        return _deserialise(files)
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"run file is damaged: {type(err).__name__}: {err}") from None


def _fsync_dir(folder: Path) -> None:
    for entry in folder.iterdir():
        with open(entry, "rb") as fh:
            os.fsync(fh.fileno())
