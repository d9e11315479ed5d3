"""Weight spectra of your own trained model, as WeightWatcher analyses them (Martin & Mahoney 2021).

Input is a checkpoint in the safetensors format: a length-prefixed JSON header and raw tensor bytes,
read without executing anything. Pickled checkpoints (`torch.save`'s .pt/.pth, which are zip archives
holding a pickle, or plain pickles) are refused: unpickling runs code from the file.

Every floating matrix (2-D weights; conv kernels reshaped to out x in*k*k by `spectra.weight_matrix`)
with at least `MIN_EVALS` eigenvalues gets one row:

- the ESD: eigenvalues of W^T W / N (`spectra.weight_esd`), their power-law tail alpha
  (`spectra.power_law_alpha`) and Marchenko-Pastur fit (`spectra.marchenko_pastur_fit`: bulk variance,
  lambda_plus, spikes above it);
- lambda_max and the weighted alpha as WeightWatcher reports them: lambda_max is the largest eigenvalue
  of W^T W (the squared spectral norm, not divided by N), alpha_weighted = alpha * log10(lambda_max);
- the rand-ESD: the same matrix with its entries randomly permuted, which keeps the entry distribution
  and destroys the correlations. A trained layer's spikes stand above the rand-ESD's largest eigenvalue;
  a spike in the rand-ESD itself (MP outliers of the permuted matrix) comes from a few unusually large
  entries: WeightWatcher's "correlation trap".
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .spectra import MPFit, PowerLawFit, marchenko_pastur_fit, power_law_alpha, weight_esd, weight_matrix

MIN_EVALS = 10  # WeightWatcher's default min_evals: smaller matrices are skipped
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_TENSORS = 20_000
CONVERT_HINT = ("save the weights as safetensors instead: `from safetensors.torch import save_file; "
                "save_file(model.state_dict(), 'model.safetensors')`")
COLUMNS = ["layer", "shape", "N", "M", "lambda_max", "alpha", "alpha_weighted", "xmin", "n_tail", "ks_distance",
           "mp_sigma2", "mp_lambda_plus", "n_spikes", "rand_lambda_max", "rand_n_spikes", "spikes_above_rand",
           "correlation_trap"]


def read_safetensors(payload: bytes, name: str = "the file", max_bytes: float | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, validated; a ValueError naming the problem otherwise. Never unpickles.

    The file keeps no insertion order (the format sorts its header), so tensors come back in natural
    order of their names (`layers.2` before `layers.10`), which is the model's order for usual names.
    """
    if not isinstance(payload, (bytes, bytearray)):
        raise ValueError(f"{name} must be given as bytes (got {type(payload).__name__})")
    if not payload:
        raise ValueError(f"{name} is empty")
    if max_bytes is not None and len(payload) > max_bytes:
        raise ValueError(f"{name} is {len(payload) / 1e6:.1f} MB; at most {max_bytes / 1e6:g} MB are accepted")
    if payload[:4] == b"PK\x03\x04":
        raise ValueError(f"{name} is a zip archive, as PyTorch's torch.save writes (.pt/.pth): it holds a pickle, "
                         f"which is never loaded here because unpickling runs code; {CONVERT_HINT}")
    if payload[:1] == b"\x80" and payload[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise ValueError(f"{name} is a Python pickle, which is never loaded here because unpickling runs code; "
                         f"{CONVERT_HINT}")
    if len(payload) < 10:
        raise ValueError(f"{name} is too short to be a safetensors file ({len(payload)} bytes)")
    header_len = int.from_bytes(payload[:8], "little")
    if header_len > len(payload) - 8 or header_len > MAX_HEADER_BYTES:
        raise ValueError(f"{name} is not a safetensors file: its first 8 bytes give a header of {header_len:,} bytes, "
                         f"more than the file's {len(payload) - 8:,}")
    try:
        header = json.loads(bytes(payload[8:8 + header_len]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{name} is not a safetensors file: its header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{name} is not a safetensors file: its header is not a JSON object")
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    if not entries:
        raise ValueError(f"{name} holds no tensors")
    if len(entries) > MAX_TENSORS:
        raise ValueError(f"{name} holds {len(entries):,} tensors; at most {MAX_TENSORS:,} are accepted")
    from safetensors.torch import load

    try:
        tensors = load(bytes(payload))
    except Exception as err:  # the library's own checks: offsets, dtypes, coverage of the data
        raise ValueError(f"{name} is not a valid safetensors file ({err})") from None
    return {k: tensors[k] for k in sorted(tensors, key=natural_key)}


def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers inside a name by value: blocks.2 < blocks.10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


@dataclass(frozen=True)
class LayerSpectrum:
    """One matrix's ESD (W^T W / N, ascending), its fits, and the same for its entry-permuted copy."""

    layer: str
    shape: tuple[int, ...]
    n: int  # rows of the N x M orientation, N >= M
    eigenvalues: np.ndarray
    rand_eigenvalues: np.ndarray
    power_law: PowerLawFit | None
    mp: MPFit | None
    rand_mp: MPFit | None

    @property
    def lambda_max(self) -> float:
        """Largest eigenvalue of W^T W (WeightWatcher's lambda_max, the squared spectral norm)."""
        return float(self.eigenvalues[-1] * self.n)

    def row(self) -> dict:
        alpha = self.power_law.alpha if self.power_law is not None else float("nan")
        rand_top = float(self.rand_eigenvalues[-1])
        return {
            "layer": self.layer, "shape": "x".join(str(s) for s in self.shape), "N": self.n,
            "M": int(self.eigenvalues.size), "lambda_max": self.lambda_max, "alpha": alpha,
            "alpha_weighted": alpha * math.log10(self.lambda_max) if self.lambda_max > 0 else float("nan"),
            "xmin": self.power_law.xmin if self.power_law is not None else float("nan"),
            "n_tail": self.power_law.n_tail if self.power_law is not None else 0,
            "ks_distance": self.power_law.ks_distance if self.power_law is not None else float("nan"),
            "mp_sigma2": self.mp.sigma2 if self.mp is not None else float("nan"),
            "mp_lambda_plus": self.mp.lambda_plus if self.mp is not None else float("nan"),
            "n_spikes": self.mp.n_outliers if self.mp is not None else -1,
            "rand_lambda_max": rand_top * self.n,
            "rand_n_spikes": self.rand_mp.n_outliers if self.rand_mp is not None else -1,
            "spikes_above_rand": int(np.sum(self.eigenvalues > rand_top)),
            "correlation_trap": bool(self.rand_mp is not None and self.rand_mp.n_outliers > 0),
        }


def _fit(fn, *args):
    try:
        return fn(*args)
    except ValueError:
        return None


def layer_spectrum(layer: str, tensor: torch.Tensor, generator: np.random.Generator) -> LayerSpectrum:
    """ESD, power-law and MP fits of one weight, and of its entry-permuted copy (the rand-ESD)."""
    w = weight_matrix(tensor).to("cpu", torch.float64)
    n, m = max(w.shape), min(w.shape)
    evals = weight_esd(w)
    flat = w.reshape(-1).numpy()
    rand = torch.from_numpy(generator.permutation(flat).reshape(tuple(w.shape)))
    rand_evals = weight_esd(rand)
    return LayerSpectrum(layer=layer, shape=tuple(tensor.shape), n=n, eigenvalues=evals, rand_eigenvalues=rand_evals,
                         power_law=_fit(power_law_alpha, evals), mp=_fit(marchenko_pastur_fit, evals, m / n),
                         rand_mp=_fit(marchenko_pastur_fit, rand_evals, m / n))


def skip_reason(name: str, tensor: torch.Tensor, min_evals: int, max_dim: int | None) -> str | None:
    """Why a tensor gets no spectrum (None when it does)."""
    if not tensor.is_floating_point():
        return f"{tensor.dtype} entries, not floating point"
    if tensor.ndim == 2 or (tensor.ndim in (3, 4, 5) and name.rsplit(".", 1)[-1].endswith("weight")):
        w = weight_matrix(tensor)
        if min(w.shape) < min_evals:
            return f"{min(w.shape)} eigenvalues, fewer than {min_evals}"
        if max_dim is not None and min(w.shape) > max_dim:
            return f"{min(w.shape)} eigenvalues, more than the {max_dim} allowed for one spectrum here"
        if not bool(torch.isfinite(tensor).all()):
            return "NaN or infinite entries"
        return None
    return f"{tensor.ndim}-D, not a weight matrix (biases and norm scales have no spectrum)"


def analyse_checkpoint(tensors: dict[str, torch.Tensor], seed: int = 0, min_evals: int = MIN_EVALS,
                       max_dim: int | None = None) -> tuple[pd.DataFrame, dict[str, LayerSpectrum], pd.DataFrame]:
    """(one row per analysed layer with COLUMNS, the spectra by layer, the skipped tensors with reasons).

    The rand-ESD permutations come from numpy's generator seeded with `seed` (the same file and seed
    give the same table). Layers keep the file's order.
    """
    if not tensors:
        raise ValueError("the checkpoint holds no tensors")
    generator = np.random.default_rng(seed)
    spectra, skipped = {}, []
    for name, tensor in tensors.items():
        reason = skip_reason(name, tensor, min_evals, max_dim)
        if reason is not None:
            skipped.append({"tensor": name, "shape": "x".join(str(s) for s in tensor.shape), "reason": reason})
            continue
        spectra[name] = layer_spectrum(name, tensor, generator)
    table = pd.DataFrame([s.row() for s in spectra.values()], columns=COLUMNS)
    return table, spectra, pd.DataFrame(skipped, columns=["tensor", "shape", "reason"])


def summary(table: pd.DataFrame) -> dict[str, float]:
    """WeightWatcher's model-level averages: mean alpha and mean weighted alpha over the fitted layers."""
    alpha = table["alpha"].to_numpy(dtype=float) if len(table) else np.zeros(0)
    weighted = table["alpha_weighted"].to_numpy(dtype=float) if len(table) else np.zeros(0)
    return {"layers": int(len(table)),
            "alpha": float(np.nanmean(alpha)) if np.isfinite(alpha).any() else float("nan"),
            "alpha_weighted": float(np.nanmean(weighted)) if np.isfinite(weighted).any() else float("nan"),
            "correlation_traps": int(table["correlation_trap"].sum()) if len(table) else 0}
