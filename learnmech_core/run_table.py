"""Stored runs as tables, for notebooks and scripts.

`load_runs()` gives every run of the run store and the shipped gallery as one tidy pandas DataFrame:
one row per run and logged step, the run's identity (`key`, `source`, `status`, `tags`), every spec
field as a flat column (`model.arch`, `optim.lr`, `seed`, ...) and the history's columns (`step`,
`loss`, `sharpness`, ...). `table="spectra"` gives the spectra rows (`step, kind, layer, index,
value`) the same way. `runs_dataset()` opens one store's Parquet files as a single lazy
`pyarrow.dataset` (with a `key` column), for stores too large to load at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .store import RunStore, default_root, gallery_root

SOURCES = ("store", "gallery")
TABLES = ("history", "spectra")
ID_COLUMNS = ["key", "source", "status", "tags"]


def load_runs(*, source: str | None = None, store: RunStore | str | Path | None = None,
              tag: str | Iterable[str] | None = None, phenomenon: str | None = None,
              arch: str | Iterable[str] | None = None, dataset: str | Iterable[str] | None = None,
              status: str | Iterable[str] | None = None, keys: Iterable[str] | None = None,
              table: str = "history") -> pd.DataFrame:
    """Stored runs as one tidy DataFrame (one row per run and step); filters combine with "and".

    source: "store", "gallery" or None for both (a key in both is read from the store).
    store: the run store to read (a RunStore or a folder; default LEARNMECH_HOME / ~/.cache/learnmech,
    skipped when it does not exist). tag, arch, dataset, status: a value or a list of values.
    phenomenon: runs of one phenomenon (its `phenomenon:NAME` tag). keys: only these runs.
    table: "history" (default) or "spectra".
    """
    if source is not None and source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)} or None (got {source!r})")
    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)} (got {table!r})")
    tags = _values(tag)
    if phenomenon is not None:
        from . import phenomena

        phenomena.get(phenomenon)  # an unknown name raises ValueError listing the known ones
        tags |= {f"phenomenon:{phenomenon}"}  # the tag phenomena.runner.tag gives a phenomenon's runs
    identities, frames, seen = [], [], set()
    for name, runs in _sources(source, store):
        index = _filtered(runs.list(), tags, _values(arch), _values(dataset), _values(status), keys)
        for row in index.itertuples(index=False):
            if row.key in seen:
                continue  # in both: the store's copy
            frame = _read(runs, row.key, table)
            if frame is not None:
                seen.add(row.key)
                identities.append({"key": row.key, "source": name, "status": row.status, "tags": row.tags or ""}
                                  | runs.spec(row.key).flat())
                frames.append(frame.assign(key=row.key))
    if not frames:
        return pd.DataFrame(columns=ID_COLUMNS + ["step"])
    rows = pd.concat(frames, ignore_index=True)
    return pd.DataFrame(identities).merge(rows, on="key", how="inner", validate="one_to_many")  # keeps run order


def runs_dataset(root: RunStore | str | Path | None = None, table: str = "history") -> ds.Dataset:
    """One store's history (or spectra) files as a single pyarrow dataset with a `key` column.

    root: a RunStore or its folder (default: the shipped gallery). History columns differ between runs
    (each run logs what its probes measure); the dataset has their union, missing values null.
    """
    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)} (got {table!r})")
    folder = Path(root.root if isinstance(root, RunStore) else root if root is not None else gallery_root()) / "runs"
    paths = sorted(str(p) for p in folder.glob(f"*/{table}.parquet"))
    if not paths:
        raise ValueError(f"no {table}.parquet files under {folder}")
    key = pa.field("key", pa.string())
    schema = pa.unify_schemas([pq.read_schema(p).remove_metadata() for p in paths]).append(key)
    return ds.dataset(paths, schema=schema, format="parquet", partition_base_dir=str(folder),
                      partitioning=ds.DirectoryPartitioning(pa.schema([key])))


# ----------------------------------------------------------------------------------------------


def _values(value) -> set[str]:
    if value is None:
        return set()
    return {value} if isinstance(value, str) else set(value)


def _sources(source: str | None, store) -> list[tuple[str, RunStore]]:
    out = []
    if source in (None, "store"):
        if isinstance(store, RunStore):
            out.append(("store", store))
        else:
            root = Path(store) if store is not None else default_root()
            if (root / "runs").is_dir():  # reading never creates a store
                out.append(("store", RunStore(root)))
    if source in (None, "gallery"):
        out.append(("gallery", RunStore(gallery_root(), readonly=True)))
    return out


def _filtered(index: pd.DataFrame, tags: set, archs: set, datasets: set, statuses: set, keys) -> pd.DataFrame:
    keep = pd.Series(True, index=index.index)
    for column, wanted in (("arch", archs), ("dataset", datasets), ("status", statuses)):
        if wanted:
            keep &= index[column].isin(wanted)
    if keys is not None:
        keep &= index["key"].isin(set(keys))
    if tags:
        keep &= index["tags"].fillna("").str.split(",").apply(lambda ts: tags.issubset(ts))
    return index[keep]


def _read(runs: RunStore, key: str, table: str) -> pd.DataFrame | None:
    try:
        return runs.table(key, table)
    except (OSError, ValueError, pa.ArrowException) as err:
        runs.problems.append(f"run {key}: {table}.parquet could not be read ({type(err).__name__}: {err}); skipped")
        return None
