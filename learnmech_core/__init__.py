"""learnmech core: specs, data, models, one training loop, probes and the run store (no UI)."""

from . import compat  # noqa: F401  (registers the model/data checks that every RunSpec runs)
from .config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from .records import Run
from .run_table import load_runs, runs_dataset
from .train import get_or_train, train  # binds `train` to the function, not the submodule
from .version import __version__

__all__ = ["RunSpec", "ModelSpec", "DataSpec", "OptimSpec", "ProbeSpec", "train", "get_or_train", "Run", "load_runs",
           "runs_dataset", "__version__"]
