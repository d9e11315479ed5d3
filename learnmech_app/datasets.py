"""Datasets the app offers: the registry's, on-disk ones that are present, and the user's own uploads.

Uploads are parsed and validated here (`parse_csv`, `parse_npz`: numeric features, no NaN, a label
column, a size cap, two or more classes for classification), then registered with the core
(`data.register_array_dataset`) under a content-addressed name `upload:<hash>` that specs use like any
dataset. They are kept per session (`st.session_state["uploads"]`); saving one (local profile only)
writes `<store>/uploads/<name>.npz` (arrays only, loaded with allow_pickle=False), which every later
session registers at start.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from learnmech_core.config import current_caps
from learnmech_core.data import data_dir, register_array_dataset
from learnmech_core.registry import DATASETS, DISK_DATASETS
from learnmech_core.store import default_root

SESSION_KEY = "uploads"
MAX_CLASSES = 1000


@dataclass
class Parsed:
    """Validated arrays of an upload and what they are."""

    x: np.ndarray
    y: np.ndarray
    task: str
    label: str
    features: list[str]
    target: str

    def summary(self) -> dict:
        classes = int(len(np.unique(self.y))) if self.task == "classification" else None
        return {"label": self.label, "rows": int(self.x.shape[0]), "features": int(self.x.shape[1]),
                "task": self.task, "classes": classes, "target": self.target}


def check_size(payload: bytes, name: str) -> None:
    """The upload cap of the profile (a few MB when hosted)."""
    cap = current_caps().max_upload_mb
    if len(payload) > cap * 1e6:
        raise ValueError(f"{name} is {len(payload) / 1e6:.1f} MB; the {current_caps().profile} profile accepts "
                         f"files up to {cap:g} MB")
    if not payload:
        raise ValueError(f"{name} is empty")


def read_csv(payload: bytes, name: str = "the file") -> pd.DataFrame:
    """A CSV upload as a table (size-checked); a message naming the problem when it is not a table."""
    check_size(payload, name)
    try:
        table = pd.read_csv(io.BytesIO(payload))
    except Exception as err:
        raise ValueError(f"{name} could not be read as CSV ({type(err).__name__}: {err})") from None
    if table.shape[1] < 2:
        raise ValueError(f"{name} needs at least two columns (features and a label or target); it has {table.shape[1]}")
    if len(table) < 4:
        raise ValueError(f"{name} needs at least 4 rows; it has {len(table)}")
    return table


def guess_task(y: pd.Series) -> str:
    """classification for text, booleans or few distinct integers; regression otherwise."""
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.dropna()
    if pd.api.types.is_integer_dtype(values) or (values == values.round()).all():
        return "classification" if values.nunique() <= max(20, int(0.05 * len(values))) else "regression"
    return "regression"


def from_table(table: pd.DataFrame, target: str, features: list[str] | None, task: str, label: str) -> Parsed:
    """Features and target of a table, validated, with messages that name the column at fault."""
    if target not in table:
        raise ValueError(f"label column {target!r} is not in the file (columns: {', '.join(map(str, table.columns))})")
    features = [c for c in (features if features is not None else table.columns) if c != target]
    if not features:
        raise ValueError("choose at least one feature column besides the label column")
    bad = [str(c) for c in features
           if not pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c])]
    if bad:
        raise ValueError(f"feature columns must be numeric; not numeric: {', '.join(bad[:5])}"
                         + (" ..." if len(bad) > 5 else "")
                         + " (drop them from the features or encode them as numbers)")
    x = table[features].to_numpy(dtype=np.float64)
    nan_cols = [str(c) for c in features if not np.isfinite(table[c].to_numpy(dtype=np.float64)).all()]
    if nan_cols:
        raise ValueError(f"feature columns contain missing or infinite values: {', '.join(nan_cols[:5])}")
    y_col = table[target]
    if y_col.isna().any():
        raise ValueError(f"label column {target!r} has {int(y_col.isna().sum())} missing values")
    return _finish(x, y_col.to_numpy(), task, label, [str(c) for c in features], str(target))


def parse_npz(payload: bytes, task: str | None, label: str) -> Parsed:
    """An .npz upload with arrays X (n x d, numeric) and y (n); arrays only, nothing unpickled."""
    check_size(payload, label)
    if not payload.startswith(b"PK"):
        raise ValueError(f"{label} is not a valid .npz file (an .npz is a zip of arrays written by numpy.savez)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            files = set(npz.files)
            missing = [k for k in ("X", "y") if k not in files]
            if missing:
                raise ValueError(f"{label} must hold arrays named X and y (missing {', '.join(missing)}; "
                                 f"found {', '.join(sorted(files)) or 'none'})")
            x, y = npz["X"], npz["y"]
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            raise ValueError(f"{label} holds object arrays; only numeric arrays are accepted") from None
        raise
    except Exception as err:
        raise ValueError(f"{label} is not a valid .npz file ({type(err).__name__}: {err})") from None
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"X must be a 2-D array (rows x features); got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"X must be numeric (got dtype {x.dtype})")
    if not np.isfinite(x.astype(np.float64)).all():
        raise ValueError(f"X contains {int((~np.isfinite(x.astype(np.float64))).sum())} missing or infinite values")
    if y.ndim != 1 and not (y.ndim == 2 and task == "regression"):
        raise ValueError(f"y must be a 1-D array of labels or targets; got shape {y.shape}")
    if len(y) != len(x):
        raise ValueError(f"y must have one entry per row of X ({len(x)}); it has {len(y)}")
    task = task or guess_task(pd.Series(y if y.ndim == 1 else y[:, 0]))
    return _finish(x.astype(np.float64), y, task, label, [f"x{i}" for i in range(x.shape[1])], "y")


def _finish(x, y, task, label, features, target) -> Parsed:
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be classification or regression (got {task!r})")
    if task == "classification":
        classes = np.unique(y.astype(str) if y.dtype == object else y)
        if len(classes) < 2:
            raise ValueError(f"classification needs at least two classes in {target!r}; found {len(classes)}")
        if len(classes) > MAX_CLASSES:
            raise ValueError(f"{target!r} has {len(classes)} distinct values; "
                             "choose regression for a continuous target")
    else:
        if not np.issubdtype(np.asarray(y).dtype, np.number):
            raise ValueError(f"regression needs a numeric target; {target!r} is not numeric")
        if not np.isfinite(np.asarray(y, dtype=np.float64)).all():
            raise ValueError(f"target {target!r} contains missing or infinite values")
    if len(x) > current_caps().max_samples * 2:
        raise ValueError(f"the data has {len(x):,} rows; the {current_caps().profile} profile allows at most "
                         f"{current_caps().max_samples * 2:,}")
    return Parsed(x, y, task, label, features, target)


def register(parsed: Parsed) -> str:
    """Register with the core and remember in this session; returns the dataset name."""
    y = parsed.y.astype(str) if parsed.y.dtype == object else parsed.y
    name = register_array_dataset(parsed.x, y, parsed.task, label=parsed.label)
    uploads = st.session_state.setdefault(SESSION_KEY, {})
    uploads[name] = parsed.summary() | {"saved": False}
    return name


# ------------------------------------------------------------------------------------------------
# saved uploads (local profile)


def saved_dir() -> Path:
    return default_root() / "uploads"


def save(name: str, parsed: Parsed) -> Path:
    """Keep an upload for later sessions (arrays and a small JSON description)."""
    if current_caps().profile == "hosted":
        raise ValueError("saving uploads is off in the hosted profile: your data stays in your session")
    folder = saved_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem = name.split(":", 1)[1]
    y = parsed.y.astype(str) if parsed.y.dtype == object else parsed.y
    buf = io.BytesIO()
    np.savez_compressed(buf, X=parsed.x, y=y)
    (folder / f"{stem}.npz").write_bytes(buf.getvalue())
    (folder / f"{stem}.json").write_text(json.dumps(parsed.summary()))
    st.session_state.setdefault(SESSION_KEY, {}).setdefault(name, parsed.summary())["saved"] = True
    return folder / f"{stem}.npz"


@st.cache_resource(show_spinner=False)
def _load_saved(folder: str, stamp: float) -> dict[str, dict]:
    out = {}
    for meta_path in sorted(Path(folder).glob("*.json")):
        try:
            meta = json.loads(meta_path.read_text())
            with np.load(meta_path.with_suffix(".npz"), allow_pickle=False) as npz:
                name = register_array_dataset(npz["X"], npz["y"], meta["task"], label=meta.get("label", ""))
            out[name] = meta | {"saved": True}
        except Exception:
            continue  # a damaged saved upload is skipped
    return out


def saved_uploads() -> dict[str, dict]:
    """Uploads saved in earlier sessions (registered once per process); none in the hosted profile."""
    if current_caps().profile == "hosted":
        return {}
    folder = saved_dir()
    if not folder.is_dir():
        return {}
    return _load_saved(str(folder), folder.stat().st_mtime)


def uploads() -> dict[str, dict]:
    """This session's uploads and the saved ones: name -> summary."""
    return saved_uploads() | st.session_state.get(SESSION_KEY, {})


def disk_available(name: str) -> bool:
    root = data_dir() / name
    return root.is_dir() and any(root.iterdir())


def dataset_options() -> dict[str, str]:
    """Dataset name -> label for pickers: registry datasets (on-disk ones when present), then uploads."""
    out = {n: n for n in DATASETS if n not in DISK_DATASETS or disk_available(n)}
    for name, meta in uploads().items():
        out[name] = f"your data: {meta.get('label', name)} ({meta.get('rows', '?')}×{meta.get('features', '?')})"
    return out


def delete_saved(name: str) -> None:
    stem = name.split(":", 1)[1]
    for suffix in (".npz", ".json"):
        (saved_dir() / f"{stem}{suffix}").unlink(missing_ok=True)
