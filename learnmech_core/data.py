"""Dataset registry: synthetic generators, scikit-learn's digits, and optional on-disk datasets.

Every dataset is generated from `DataSpec.seed` alone (numpy Generator), split into disjoint train and
test sets, optionally class-subsetted (labels renumbered 0..k-1 in sorted order) and standardised with
statistics of the training set only. Inputs come in one of three kinds: `vector` (N, d), `image`
(N, C, H, W) and `tokens` (N, T) of integer ids. On-disk datasets live under `LEARNMECH_DATA_DIR`:
`mnist/` and `fashion_mnist/` hold the four IDX files (optionally .gz), `cifar10/` the python batches
(`data_batch_1..5`, `test_batch`, optionally inside `cifar-10-batches-py/`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DataSpec
from .registry import DATASETS, UPLOAD_PREFIX


@dataclass(frozen=True)
class DataInfo:
    """What a dataset is, known without loading it."""

    name: str
    task: str  # "classification" | "regression"
    kind: str  # "vector" | "image" | "tokens"
    input_shape: tuple[int, ...]  # one example, e.g. (64,), (1, 8, 8), (2,)
    n_outputs: int  # classes, or regression output dimension
    n_available: int | None  # examples available (None: generated on demand)
    vocab: int | None = None  # token datasets
    description: str = ""


@dataclass
class Dataset:
    """Train/test tensors (CPU) and what they are. Labels are int64 for classification."""

    info: DataInfo
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def targets(self, y: torch.Tensor, loss: str) -> torch.Tensor:
        """Targets as the loss wants them: one-hot floats for MSE on classes, labels for CE."""
        if self.info.task == "classification" and loss == "mse":
            return torch.nn.functional.one_hot(y, self.info.n_outputs).to(torch.get_default_dtype())
        return y


# ------------------------------------------------------------------------------------------------
# metadata


def data_dir() -> Path:
    """Folder for on-disk datasets (LEARNMECH_DATA_DIR, default ~/.cache/learnmech/datasets)."""
    root = os.environ.get("LEARNMECH_DATA_DIR")
    if root:
        return Path(root).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "learnmech" / "datasets"


_DESCRIPTIONS = {
    "digits": "scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes)",
    "gaussian_mixture": "Gaussian clusters in `dim` dimensions, `n_classes` classes, means `separation` apart",
    "teacher_student": "regression on a random two-layer ReLU teacher of width `teacher_width` (+ noise)",
    "moons": "two interleaving half-circles in 2-D",
    "spirals": "`n_classes` interleaved spiral arms in 2-D",
    "circles": "two concentric circles in 2-D",
    "linear_lowrank": "whitened inputs, linear map with the given singular values (deep linear networks)",
    "modular_arithmetic": "(a op b) mod p from the token pair (a, b) (grokking)",
    "mnist": "MNIST from IDX files under LEARNMECH_DATA_DIR/mnist",
    "fashion_mnist": "Fashion-MNIST from IDX files under LEARNMECH_DATA_DIR/fashion_mnist",
    "cifar10": "CIFAR-10 python batches under LEARNMECH_DATA_DIR/cifar10",
}


def describe(spec: DataSpec) -> DataInfo:
    """Metadata for a spec without generating or reading the data."""
    name = spec.name
    n_cls = lambda full: len(spec.classes) if spec.classes else full  # noqa: E731
    if name.startswith(UPLOAD_PREFIX):
        arrays = _uploads_get(name)
        return arrays.info
    desc = _DESCRIPTIONS.get(name, "")
    if name == "digits":
        return DataInfo(name, "classification", "image", (1, 8, 8), n_cls(10), 1797, description=desc)
    if name == "gaussian_mixture":
        return DataInfo(name, "classification", "vector", (spec.dim,), n_cls(spec.n_classes), None, description=desc)
    if name == "teacher_student":
        return DataInfo(name, "regression", "vector", (spec.dim,), 1, None, description=desc)
    if name in ("moons", "circles"):
        return DataInfo(name, "classification", "vector", (2,), n_cls(2), None, description=desc)
    if name == "spirals":
        return DataInfo(name, "classification", "vector", (2,), n_cls(spec.n_classes), None, description=desc)
    if name == "linear_lowrank":
        return DataInfo(name, "regression", "vector", (spec.dim,), spec.dim, None, description=desc)
    if name == "modular_arithmetic":
        p = spec.modulus
        return DataInfo(name, "classification", "tokens", (2,), n_cls(p), None, vocab=p, description=desc)
    if name in ("mnist", "fashion_mnist"):
        return DataInfo(name, "classification", "image", (1, 28, 28), n_cls(10), 70_000, description=desc)
    if name == "cifar10":
        return DataInfo(name, "classification", "image", (3, 32, 32), n_cls(10), 60_000, description=desc)
    raise ValueError(f"data.name must be one of {', '.join(DATASETS)} (got {name!r})")


# ------------------------------------------------------------------------------------------------
# loading


def load(spec: DataSpec) -> Dataset:
    """Generate or read the dataset a spec names (deterministic in spec.seed)."""
    info = describe(spec)
    if spec.name.startswith(UPLOAD_PREFIX):
        return _split_arrays(spec, info, *_uploads_get(spec.name).arrays)
    if spec.name in ("mnist", "fashion_mnist", "cifar10"):
        xtr, ytr, xte, yte = _read_disk(spec.name)
        return _finish_presplit(spec, info, xtr, ytr, xte, yte)
    rng = np.random.default_rng(spec.seed)
    n = spec.n_train + spec.n_test
    if spec.name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.data.reshape(-1, 1, 8, 8).astype(np.float64)
        return _split_arrays(spec, info, x, bunch.target.astype(np.int64))
    if spec.name == "modular_arithmetic":
        return _modular(spec, info, rng)
    generate = _GENERATORS[spec.name]
    # with class subsetting, generate enough examples that the kept classes fill n
    factor = 1 if not spec.classes else int(np.ceil(_full_classes(spec) / len(spec.classes))) + 1
    x, y = generate(spec, rng, n * factor)
    return _split_arrays(spec, info, x, y)


def _full_classes(spec: DataSpec) -> int:
    return {"gaussian_mixture": spec.n_classes, "spirals": spec.n_classes, "moons": 2, "circles": 2}.get(spec.name, 1)


def _gaussian_mixture(spec, rng, n):
    directions = rng.standard_normal((spec.n_classes, spec.dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = directions * spec.separation / 2.0
    y = rng.integers(0, spec.n_classes, size=n)
    x = means[y] + rng.standard_normal((n, spec.dim))
    return x + spec.noise * rng.standard_normal(x.shape), y  # extra input noise (0: unit-variance clusters)


def _teacher_student(spec, rng, n):
    w1 = rng.standard_normal((spec.dim, spec.teacher_width)) / np.sqrt(spec.dim)
    w2 = rng.standard_normal((spec.teacher_width, 1)) / np.sqrt(spec.teacher_width)
    x = rng.standard_normal((n, spec.dim))
    clean = np.maximum(x @ w1, 0.0) @ w2
    # standardise the teacher's output with its population std (estimated on a fixed large sample)
    probe = np.maximum(np.random.default_rng(spec.seed + 1).standard_normal((8192, spec.dim)) @ w1, 0.0) @ w2
    clean = (clean - probe.mean()) / probe.std()
    return x, clean + spec.noise * rng.standard_normal(clean.shape)


def _moons(spec, rng, n):
    y = rng.integers(0, 2, size=n)
    t = rng.uniform(0, np.pi, size=n)
    x = np.where(y[:, None] == 0, np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    return x + spec.noise * rng.standard_normal(x.shape), y


def _circles(spec, rng, n):
    y = rng.integers(0, 2, size=n)
    t = rng.uniform(0, 2 * np.pi, size=n)
    radius = np.where(y == 0, 1.0, 0.5)
    x = radius[:, None] * np.c_[np.cos(t), np.sin(t)]
    return x + spec.noise * rng.standard_normal(x.shape), y


def _spirals(spec, rng, n):
    k = spec.n_classes
    y = rng.integers(0, k, size=n)
    r = rng.uniform(0.05, 1.0, size=n)
    theta = 2 * np.pi * (y / k) + 3.0 * np.pi * r
    x = r[:, None] * np.c_[np.cos(theta), np.sin(theta)]
    return x + spec.noise * rng.standard_normal(x.shape), y


def linear_lowrank_map(spec: DataSpec) -> np.ndarray:
    """The exact target map W* (d x d) of a linear_lowrank spec: y = W* x (+ noise)."""
    rng = np.random.default_rng([spec.seed, 1])  # a stream separate from the inputs'
    d = spec.dim
    u, _ = np.linalg.qr(rng.standard_normal((d, d)))
    v, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.zeros(d)
    s[: len(spec.singular_values)] = spec.singular_values
    return u @ np.diag(s) @ v.T


_GENERATORS = {
    "gaussian_mixture": _gaussian_mixture,
    "teacher_student": _teacher_student,
    "moons": _moons,
    "circles": _circles,
    "spirals": _spirals,
    "linear_lowrank": lambda spec, rng, n: (rng.standard_normal((n, spec.dim)), np.zeros(n)),
}


def _modular(spec: DataSpec, info: DataInfo, rng) -> Dataset:
    p = spec.modulus
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    a, b = a.ravel(), b.ravel()
    if spec.op == "div":
        keep = b != 0
        a, b = a[keep], b[keep]
    if spec.op == "add":
        y = (a + b) % p
    elif spec.op == "sub":
        y = (a - b) % p
    elif spec.op == "mul":
        y = (a * b) % p
    else:
        y = (a * np.array([pow(int(v), p - 2, p) for v in b])) % p
    x = np.stack([a, b], axis=1).astype(np.int64)
    order = rng.permutation(len(y))
    return _finish(spec, info, x[order], y[order].astype(np.int64), presplit=None)


def _split_arrays(spec: DataSpec, info: DataInfo, x: np.ndarray, y: np.ndarray) -> Dataset:
    """Shuffle with the data seed, then train = first n_train, test = next n_test."""
    order = np.random.default_rng(spec.seed).permutation(len(x))
    return _finish(spec, info, x[order], y[order], presplit=None)


def _finish_presplit(spec, info, xtr, ytr, xte, yte) -> Dataset:
    rng = np.random.default_rng(spec.seed)
    otr, ote = rng.permutation(len(xtr)), rng.permutation(len(xte))
    return _finish(spec, info, xtr[otr], ytr[otr], presplit=(xte[ote], yte[ote]))


def _finish(spec: DataSpec, info: DataInfo, x, y, presplit) -> Dataset:
    if spec.classes is not None and info.task == "classification":
        x, y = _subset_classes(spec, x, y)
        if presplit is not None:
            presplit = _subset_classes(spec, *presplit)
    if presplit is None:
        need = spec.n_train + spec.n_test
        if need > len(x):
            raise ValueError(
                f"data.n_train + data.n_test must be at most {len(x)} for {spec.name}"
                f"{' with these classes' if spec.classes else ''} (got {need})"
            )
        xtr, ytr, xte, yte = x[: spec.n_train], y[: spec.n_train], x[spec.n_train : need], y[spec.n_train : need]
    else:
        xte_all, yte_all = presplit
        if spec.n_train > len(x):
            raise ValueError(f"data.n_train must be at most {len(x)} for {spec.name} (got {spec.n_train})")
        if spec.n_test > len(xte_all):
            raise ValueError(f"data.n_test must be at most {len(xte_all)} for {spec.name} (got {spec.n_test})")
        xtr, ytr, xte, yte = x[: spec.n_train], y[: spec.n_train], xte_all[: spec.n_test], yte_all[: spec.n_test]
    if info.kind != "tokens" and spec.standardize:
        xtr, xte = _standardize(spec, xtr, xte)
    if spec.name == "linear_lowrank":  # targets exactly W* x (+ noise) of the (whitened) inputs
        w_star = linear_lowrank_map(spec)
        rng = np.random.default_rng([spec.seed, 2])
        ytr = xtr @ w_star.T + spec.noise * rng.standard_normal((len(xtr), spec.dim))
        yte = xte @ w_star.T + spec.noise * rng.standard_normal((len(xte), spec.dim))
    x_dtype = torch.long if info.kind == "tokens" else torch.float32
    y_dtype = torch.long if info.task == "classification" else torch.float32
    as_t = lambda a, dt: torch.as_tensor(np.ascontiguousarray(a)).to(dt)  # noqa: E731
    if info.task == "regression" and ytr.ndim == 1:
        ytr, yte = ytr[:, None], yte[:, None]
    return Dataset(info, as_t(xtr, x_dtype), as_t(ytr, y_dtype), as_t(xte, x_dtype), as_t(yte, y_dtype))


def _subset_classes(spec: DataSpec, x, y):
    keep = np.isin(y, spec.classes)
    if keep.sum() == 0:
        raise ValueError(f"data.classes {list(spec.classes)} selects no examples of {spec.name}")
    relabel = {c: i for i, c in enumerate(spec.classes)}
    return x[keep], np.array([relabel[int(v)] for v in y[keep]], dtype=np.int64)


def _standardize(spec: DataSpec, xtr: np.ndarray, xte: np.ndarray):
    """Per-feature zero mean / unit variance from the training set; linear_lowrank is whitened exactly."""
    shape = xtr.shape[1:]
    a = xtr.reshape(len(xtr), -1).astype(np.float64)
    b = xte.reshape(len(xte), a.shape[1]).astype(np.float64)
    mean = a.mean(axis=0)
    if spec.name == "linear_lowrank":
        cov = (a - mean).T @ (a - mean) / len(a)
        evals, evecs = np.linalg.eigh(cov)
        whiten = evecs @ np.diag(1.0 / np.sqrt(np.maximum(evals, 1e-12))) @ evecs.T
        return (a - mean) @ whiten, (b - mean) @ whiten
    std = a.std(axis=0)
    std[std < 1e-8] = 1.0
    return ((a - mean) / std).reshape((-1,) + shape), ((b - mean) / std).reshape((-1,) + shape)


# ------------------------------------------------------------------------------------------------
# on-disk formats (read without executing code)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzip or plain; validates the header against the size."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {len(body)} bytes")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise ValueError(f"{stem} not found in {folder} (set LEARNMECH_DATA_DIR to the folder holding {folder.name}/)")


class _ArraysOnly(pickle.Unpickler):
    """Unpickler that builds only numpy arrays, dtypes and plain containers; anything else is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise ValueError(f"refusing to load {module}.{name} from a CIFAR batch (only arrays are allowed)")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: only b'data' (N x 3072 uint8) and b'labels' are used, validated."""
    with open(path, "rb") as fh:
        obj = _ArraysOnly(io.BytesIO(fh.read()), encoding="bytes").load()
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a CIFAR batch (expected a dict)")
    data, labels = obj.get(b"data", obj.get("data")), obj.get(b"labels", obj.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, 3072)")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(data),) or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: 'labels' must be N integers in 0..9")
    return data.reshape(-1, 3, 32, 32), labels



def _read_disk(name: str):
    root = data_dir()
    if name in ("mnist", "fashion_mnist"):
        folder = root / name
        xtr = read_idx(_find(folder, "train-images-idx3-ubyte"))
        ytr = read_idx(_find(folder, "train-labels-idx1-ubyte"))
        xte = read_idx(_find(folder, "t10k-images-idx3-ubyte"))
        yte = read_idx(_find(folder, "t10k-labels-idx1-ubyte"))
        if xtr.ndim != 3 or len(xtr) != len(ytr) or len(xte) != len(yte):
            raise ValueError(f"{folder}: image and label files disagree")
        return (xtr[:, None].astype(np.float64), ytr.astype(np.int64),
                xte[:, None].astype(np.float64), yte.astype(np.int64))
    folder = root / "cifar10"
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    train_files = sorted(folder.glob("data_batch_*"))
    if not train_files or not (folder / "test_batch").exists():
        raise ValueError(f"CIFAR-10 batches not found in {folder} (need data_batch_* and test_batch)")
    parts = [read_cifar_batch(f) for f in train_files]
    xte, yte = read_cifar_batch(folder / "test_batch")
    xtr = np.concatenate([p[0] for p in parts]).astype(np.float64)
    ytr = np.concatenate([p[1] for p in parts])
    return xtr, ytr, xte.astype(np.float64), yte


# ------------------------------------------------------------------------------------------------
# user-supplied arrays ("Your own data")


@dataclass(frozen=True)
class _Upload:
    info: DataInfo
    arrays: tuple[np.ndarray, np.ndarray]


_UPLOADS: dict[str, _Upload] = {}  # process-wide, content-addressed: same bytes -> same name
_UPLOADS_LOCK = threading.Lock()


def register_array_dataset(x: np.ndarray, y: np.ndarray, task: str, label: str = "") -> str:
    """Validate user arrays and register them; returns the dataset name `upload:<hash>` for DataSpec."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[0] < 4 or x.shape[1] < 1:
        raise ValueError(f"X must be a 2-D array with at least 4 rows (got shape {x.shape})")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"X must be numeric (got dtype {x.dtype})")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have one entry per row of X ({x.shape[0]}; got {y.shape[0]})")
    if not np.isfinite(x.astype(np.float64)).all():
        raise ValueError("X contains NaN or infinite values")
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be classification or regression (got {task!r})")
    if task == "classification":
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y must hold at least two classes for classification (got {len(classes)})")
        y = y_idx.astype(np.int64)
        n_out = len(classes)
    else:
        if not np.issubdtype(y.dtype, np.number) or not np.isfinite(y.astype(np.float64)).all():
            raise ValueError("y must be numeric and finite for regression")
        y = y.astype(np.float64).reshape(len(y), -1)
        n_out = y.shape[1]
    digest = hashlib.sha256(x.astype(np.float64).tobytes() + y.tobytes() + task.encode()).hexdigest()[:12]
    name = UPLOAD_PREFIX + digest
    info = DataInfo(name, task, "vector", (x.shape[1],), n_out, len(x), description=label or "uploaded data")
    with _UPLOADS_LOCK:
        _UPLOADS[name] = _Upload(info, (x.astype(np.float64), y))
    return name


def display_name(name: str) -> str:
    """A dataset's name for legends and tables: registry names as they are, an upload by its label when loaded."""
    if not name.startswith(UPLOAD_PREFIX):
        return name
    with _UPLOADS_LOCK:
        upload = _UPLOADS.get(name)
    short = name[: len(UPLOAD_PREFIX) + 6]
    return f"{upload.info.description} ({short})" if upload is not None and upload.info.description else short


def upload_arrays(name: str) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(x, y, task, label) of a registered upload: `register_array_dataset(*...)` registers it again under
    the same name in another process (a training worker)."""
    upload = _uploads_get(name)
    return (*upload.arrays, upload.info.task, upload.info.description)


def _uploads_get(name: str) -> _Upload:
    with _UPLOADS_LOCK:
        if name not in _UPLOADS:
            raise ValueError(f"data.name {name!r} is an uploaded dataset that is not loaded in this session")
        return _UPLOADS[name]
