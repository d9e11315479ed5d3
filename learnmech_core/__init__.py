"""learnmech core: specs, data, models, one training loop, probes and the run store (no UI)."""

from .config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from .records import Run
from .train import train  # noqa: E402  (binds `train` to the function, not the submodule)

__all__ = ["RunSpec", "ModelSpec", "DataSpec", "OptimSpec", "ProbeSpec", "train", "Run"]
