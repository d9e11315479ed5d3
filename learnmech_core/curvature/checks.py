"""Argument checks shared by the curvature tools: each raises ValueError naming the argument."""

from __future__ import annotations

import math

import numpy as np
import torch

MODES = ("algebraic", "magnitude", "smallest")
DEFAULT_SEED = 0


def check_k(k: int, n: int) -> None:
    """Raise ValueError naming k unless 1 <= k <= n."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer between 1 and the number of parameters {n} (got {k!r})")


def check_positive(name: str, value: float) -> None:
    """Raise ValueError naming the argument unless value is a finite positive number."""
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number (got {value!r})")


def check_count(name: str, value: int, minimum: int = 1) -> None:
    """Raise ValueError naming the argument unless value is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r})")


def check_mode(mode: str) -> None:
    """Raise ValueError naming mode unless it is one of MODES."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")


def make_generator(generator: torch.Generator | None) -> torch.Generator:
    """The caller's generator, or a fresh CPU generator seeded with DEFAULT_SEED (never the global RNG)."""
    if generator is None:
        return torch.Generator().manual_seed(DEFAULT_SEED)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None (got {type(generator).__name__})")
    return generator
