"""Datasets: shapes, dtypes, seeding, splits, standardisation, exact targets, on-disk formats."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from learnmech_core import DataSpec
from learnmech_core.data import describe, linear_lowrank_map, load, register_array_dataset

SYNTHETIC = ["gaussian_mixture", "teacher_student", "moons", "spirals", "circles", "linear_lowrank"]


@pytest.mark.parametrize("name", ["digits", *SYNTHETIC, "modular_arithmetic"])
def test_shapes_dtypes_and_seeding(name):
    spec = DataSpec(name=name, n_train=120, n_test=40, modulus=13)
    data = load(spec)
    info = describe(spec)
    assert data.x_train.shape == (120, *info.input_shape) and data.x_test.shape == (40, *info.input_shape)
    if info.task == "classification":
        assert data.y_train.dtype == torch.long and int(data.y_train.max()) < info.n_outputs
        assert data.targets(data.y_train, "mse").shape == (120, info.n_outputs)
    else:
        assert data.y_train.dtype == torch.float32 and data.y_train.shape == (120, info.n_outputs)
    assert data.x_train.dtype == (torch.long if info.kind == "tokens" else torch.float32)
    again = load(spec)
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_test, data.y_test)
    other = load(DataSpec(name=name, n_train=120, n_test=40, modulus=13, seed=1))
    assert not torch.equal(other.x_train, data.x_train)


def test_standardisation_uses_training_statistics():
    data = load(DataSpec(name="gaussian_mixture", n_train=500, n_test=100, dim=5))
    x = data.x_train.double()
    assert torch.allclose(x.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(5, dtype=torch.float64), atol=1e-5)
    raw = load(DataSpec(name="gaussian_mixture", n_train=500, n_test=100, dim=5, standardize=False))
    assert not torch.allclose(raw.x_train.double().std(0), torch.ones(5, dtype=torch.float64), atol=1e-2)


def test_digits_split_is_disjoint_and_classes_subset():
    data = load(DataSpec(name="digits", n_train=1000, n_test=797, standardize=False))
    from sklearn.datasets import load_digits

    # together they are a permutation of the whole dataset
    everything = torch.cat([data.x_train, data.x_test]).reshape(1797, 64).numpy()
    assert np.allclose(np.sort(everything.sum(1)), np.sort(load_digits().data.sum(1)))
    sub = load(DataSpec(name="digits", classes=(3, 8), n_train=200, n_test=100))
    assert set(sub.y_train.tolist()) == {0, 1} and describe(DataSpec(name="digits", classes=(3, 8))).n_outputs == 2


def test_linear_lowrank_is_whitened_and_exact():
    spec = DataSpec(name="linear_lowrank", dim=6, singular_values=(3.0, 1.0, 0.25), n_train=400, n_test=50)
    data = load(spec)
    x, y = data.x_train.double(), data.y_train.double()
    assert torch.allclose(x.T @ x / len(x), torch.eye(6, dtype=torch.float64), atol=1e-5)
    w_star = torch.as_tensor(linear_lowrank_map(spec))
    assert torch.allclose(y, x @ w_star.T, atol=1e-5)
    assert np.allclose(np.linalg.svd(w_star.numpy(), compute_uv=False)[:4], [3.0, 1.0, 0.25, 0.0], atol=1e-12)


def test_modular_arithmetic_labels_and_disjoint_pairs():
    spec = DataSpec(name="modular_arithmetic", modulus=11, n_train=70, n_test=51, op="sub")
    data = load(spec)
    a, b = data.x_train[:, 0], data.x_train[:, 1]
    assert torch.equal(data.y_train, (a - b) % 11)
    pairs = {tuple(r) for r in torch.cat([data.x_train, data.x_test]).tolist()}
    assert len(pairs) == 121
    div = load(DataSpec(name="modular_arithmetic", modulus=7, op="div", n_train=30, n_test=12))
    assert torch.equal((div.y_train * div.x_train[:, 1]) % 7, div.x_train[:, 0])


def _write_idx(path, array, gz=False):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)


def test_mnist_idx_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    xtr, ytr = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30)
    _write_idx(folder / "train-images-idx3-ubyte.gz", xtr, gz=True)
    _write_idx(folder / "train-labels-idx1-ubyte", ytr)
    _write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (12, 28, 28)))
    _write_idx(folder / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 12))
    monkeypatch.setenv("LEARNMECH_DATA_DIR", str(tmp_path))
    data = load(DataSpec(name="mnist", n_train=30, n_test=10, standardize=False))
    assert data.x_train.shape == (30, 1, 28, 28)
    # the same images, shuffled: match by content
    got = sorted(map(tuple, data.x_train.reshape(30, -1).int().tolist()))
    assert got == sorted(map(tuple, xtr.reshape(30, -1).tolist()))
    with pytest.raises(ValueError, match="data.n_train must be at most 30"):
        load(DataSpec(name="mnist", n_train=31, n_test=1))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(ValueError, match="header says"):
        load(DataSpec(name="mnist", n_train=5, n_test=5))


def test_cifar_batches_are_read_without_running_code(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in (1, 2):
        batch = {b"data": rng.integers(0, 256, (8, 3072)).astype(np.uint8), b"labels": list(rng.integers(0, 10, 8))}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [1, 2, 3, 4]}))
    monkeypatch.setenv("LEARNMECH_DATA_DIR", str(tmp_path))
    data = load(DataSpec(name="cifar10", n_train=16, n_test=4))
    assert data.x_train.shape == (16, 3, 32, 32) and sorted(data.y_test.tolist()) == [1, 2, 3, 4]

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load(DataSpec(name="cifar10", n_train=16, n_test=4))


def test_uploaded_arrays_are_validated():
    x = np.random.default_rng(0).standard_normal((40, 3))
    name = register_array_dataset(x, np.arange(40) % 2, "classification")
    data = load(DataSpec(name=name, n_train=30, n_test=10))
    assert data.x_train.shape == (30, 3) and describe(DataSpec(name=name)).n_outputs == 2
    with pytest.raises(ValueError, match="at least two classes"):
        register_array_dataset(x, np.zeros(40), "classification")
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        register_array_dataset(bad, np.arange(40) % 2, "classification")
    with pytest.raises(ValueError, match="y must have one entry per row of X"):
        register_array_dataset(x, np.arange(39) % 2, "classification")
