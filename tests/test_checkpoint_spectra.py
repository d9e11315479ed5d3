"""Checkpoint analysis: safetensors files the test writes (MP matrix, planted power law, a correlation trap),
refused files with their reasons, and the weighted alpha against a hand computation."""

from __future__ import annotations

import io
import json
import math
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save

from learnmech_core.checkpoint_spectra import analyse_checkpoint, read_safetensors, summary


def gaussian(n=400, m=200, sigma=1.0, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(0.0, sigma, size=(n, m)))


def planted(n=600, m=300, alpha=2.5, seed=1):
    """W = U diag(s) V^T with s^2 / N drawn from a Pareto law of density exponent alpha (xmin 1)."""
    rng = np.random.default_rng(seed)
    lam = (1.0 - rng.random(m)) ** (-1.0 / (alpha - 1.0))  # inverse CDF of p(x) ~ x^-alpha, x >= 1
    u = np.linalg.qr(rng.normal(size=(n, m)))[0]
    v = np.linalg.qr(rng.normal(size=(m, m)))[0]
    return torch.from_numpy(u @ np.diag(np.sqrt(lam * n)) @ v.T), np.sort(lam)


def test_random_matrix_follows_marchenko_pastur():
    w = gaussian(sigma=0.5)
    tensors = read_safetensors(save({"layer.weight": w.float(), "layer.bias": torch.zeros(200)}))
    table, spectra, skipped = analyse_checkpoint(tensors)
    row = table.set_index("layer").loc["layer.weight"]
    q = 200 / 400
    assert row["mp_sigma2"] == pytest.approx(0.25, rel=0.05)
    assert row["mp_lambda_plus"] == pytest.approx(0.25 * (1 + math.sqrt(q)) ** 2, rel=0.05)
    assert row["n_spikes"] == 0 and row["rand_n_spikes"] == 0 and not row["correlation_trap"]
    svals = np.linalg.svd(w.float().double().numpy(), compute_uv=False)
    np.testing.assert_allclose(spectra["layer.weight"].eigenvalues, np.sort(svals**2) / 400, rtol=1e-5)
    assert row["lambda_max"] == pytest.approx(svals[0] ** 2, rel=1e-5)
    assert list(skipped["tensor"]) == ["layer.bias"] and "not a weight matrix" in skipped["reason"].iloc[0]


def test_planted_power_law_and_weighted_alpha_by_hand():
    w, lam = planted()
    table, spectra, _ = analyse_checkpoint(read_safetensors(save({"w": w})))
    row = table.iloc[0]
    assert row["alpha"] == pytest.approx(2.5, abs=0.35)
    # by hand: the continuous MLE on the fitted tail, then WeightWatcher's alpha * log10(largest eigenvalue of W^T W)
    tail = lam[lam >= row["xmin"] * (1 - 1e-9)]
    assert len(tail) == row["n_tail"]
    alpha = 1 + len(tail) / np.sum(np.log(tail / row["xmin"]))
    assert row["alpha"] == pytest.approx(alpha, rel=1e-6)
    lambda_max = np.linalg.svd(w.numpy(), compute_uv=False)[0] ** 2
    assert row["lambda_max"] == pytest.approx(lambda_max, rel=1e-9)
    assert row["alpha_weighted"] == pytest.approx(alpha * math.log10(lambda_max), rel=1e-6)
    assert row["spikes_above_rand"] > 5  # permuting the entries destroys the planted structure
    s = summary(table)
    assert s["layers"] == 1 and s["alpha_weighted"] == pytest.approx(row["alpha_weighted"])


def test_a_few_huge_entries_are_a_correlation_trap():
    w = gaussian(seed=3)
    w[17, 5] = 200.0
    table, _, _ = analyse_checkpoint(read_safetensors(save({"trap.weight": w})))
    assert table.iloc[0]["correlation_trap"] and table.iloc[0]["rand_n_spikes"] >= 1


def test_conv_kernels_small_and_integer_tensors():
    tensors = {"conv.weight": torch.randn(16, 4, 3, 3), "tiny.weight": torch.randn(5, 8),
               "steps": torch.arange(4), "bad.weight": torch.full((20, 20), float("nan"))}
    table, _, skipped = analyse_checkpoint(read_safetensors(save(tensors)), max_dim=None)
    assert list(table["layer"]) == ["conv.weight"] and table.iloc[0]["shape"] == "16x4x3x3"
    assert (table.iloc[0]["N"], table.iloc[0]["M"]) == (36, 16)
    reasons = dict(zip(skipped["tensor"], skipped["reason"], strict=True))
    assert "fewer than 10" in reasons["tiny.weight"] and "not floating point" in reasons["steps"]
    assert "NaN" in reasons["bad.weight"]
    _, _, skipped = analyse_checkpoint({"big": torch.randn(40, 30)}, max_dim=20)
    assert "more than the 20 allowed" in skipped["reason"].iloc[0]


def torch_save_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    return buf.getvalue()


def header_file(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("payload, message", [
    (b"", "is empty"),
    (pickle.dumps({"w": [1.0, 2.0]}), "is a Python pickle"),
    (torch_save_bytes(), "zip archive, as PyTorch's torch.save writes"),
    (b"hello world, not tensors", "its first 8 bytes give a header of"),
    ((5).to_bytes(8, "little") + b"{oops", "header is not JSON"),
    (header_file([1, 2]), "not a JSON object"),
    (header_file({"__metadata__": {"a": "b"}}), "holds no tensors"),
    (header_file({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\x00" * 8),
     "not a valid safetensors file"),
])
def test_bad_files_are_refused_with_the_reason(payload, message):
    with pytest.raises(ValueError, match=message):
        read_safetensors(payload, "model.bin")


def test_size_cap_names_the_size():
    payload = save({"w": torch.zeros(300, 300)})
    with pytest.raises(ValueError, match=r"model.safetensors is 0.4 MB; at most 0.1 MB"):
        read_safetensors(payload, "model.safetensors", max_bytes=0.1e6)


def test_tensors_come_back_in_natural_name_order():
    names = ["blocks.10.weight", "blocks.2.weight", "blocks.1.weight", "head.weight"]
    tensors = read_safetensors(save({n: torch.randn(12, 12) for n in names}))
    assert list(tensors) == ["blocks.1.weight", "blocks.2.weight", "blocks.10.weight", "head.weight"]
