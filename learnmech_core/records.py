"""What a run leaves behind, and the one rule that turns a training step into a record.

`Run` (spec, tidy history, spectra, status, timings), `Progress` (what a progress callback receives),
`SPECTRA_COLUMNS` (the long spectra table) and `StepRule`: when a step is logged and evaluated, what
its history row starts with, and when a loss ends the run as diverged. The trainer (`train.py`) and
the vmapped ensemble (`ensemble.py`) both follow `StepRule`, and the store (`store.py`) reads and
writes `Run`s; nothing here trains.

History columns every logged row has: `step`, `time_s`, `lr`, `loss` (the step's batch), and
`train_acc` for a full-batch classification step; evaluated rows add `train_loss`, `test_loss` and
`test_acc`; probes add their own (see `probes.py`), e.g. `sharpness`, `sharpness_hvps`,
`sharpness_converged` (1.0 when its eigensolver certified the value, 0.0 when not), `precond_sharpness`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .config import RunSpec

SPECTRA_COLUMNS = ["step", "kind", "layer", "index", "value"]
STATUSES = ("ok", "diverged", "stopped", "failed")
MAX_SAVED_PARAMS = 2_000_000  # larger models keep no final weights in the Run


@dataclass
class Progress:
    """What a progress callback receives after each logged step."""

    step: int
    total: int
    row: dict
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / max(self.total, 1))

    @property
    def eta_s(self) -> float:
        """Seconds left at the current pace."""
        return self.elapsed_s / self.fraction - self.elapsed_s if self.fraction > 0 else float("nan")


@dataclass
class Run:
    """A finished (or diverged / stopped / failed) run: spec, tidy history and spectra, status, timings."""

    spec: RunSpec
    history: pd.DataFrame
    spectra: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SPECTRA_COLUMNS))
    status: str = "ok"
    timings: dict = field(default_factory=dict)
    message: str = ""
    weights: dict[str, np.ndarray] | None = None
    probe_errors: list[str] = field(default_factory=list)
    traceback: str = ""  # of the exception that failed the run (status "failed"), for meta.json and bug reports
    environment: dict = field(default_factory=dict)  # versions, device, commit: filled when first stored
    snapshots: dict[str, np.ndarray] | None = None  # probes.snapshot_every: {"step": (T,), "weights": (T, n)}

    @property
    def key(self) -> str:
        return self.spec.key()

    def __repr__(self) -> str:
        """One line: key, status, length, final loss, table sizes and the spec's changed fields."""
        steps = int(self.history["step"].max()) if "step" in self.history and len(self.history) else 0
        message = f", message={self.message[:80]!r}" if self.message else ""
        weights = f"{len(self.weights)} arrays" if self.weights else "none"
        return (f"Run(key={self.key!r}, status={self.status!r}{message}, steps={steps}, "
                f"final_loss={self.final('loss'):.4g}, history={self.history.shape[0]}x{self.history.shape[1]}, "
                f"spectra={len(self.spectra)} rows, weights={weights}, spec={self.spec!r})")

    def final(self, column: str) -> float:
        """Last non-missing value of a history column (NaN if none)."""
        if column not in self.history:
            return float("nan")
        values = self.history[column].dropna()
        return float(values.iloc[-1]) if len(values) else float("nan")


class StepRule:
    """When one run's steps are logged and evaluated, and when its loss ends it as diverged.

    Divergence: a non-finite loss, or one above `optim.diverge_factor` x max(initial loss, 1), the
    initial loss being the first one observed. A diverged step is always logged (never evaluated) and
    ends the run. A step is logged every `probes.log_every` steps and at the last; evaluated (full
    training and test metrics) at the last step and every `optim.eval_every` steps.
    """

    def __init__(self, spec: RunSpec) -> None:
        self.log_every, self.eval_every = spec.probes.log_every, spec.optim.eval_every
        self.diverge_factor = spec.optim.diverge_factor
        self.initial_loss: float | None = None

    def diverged(self, loss: float) -> bool:
        """Whether this step's loss ends the run (the first loss seen becomes the initial loss)."""
        if self.initial_loss is None:
            self.initial_loss = loss
        return not math.isfinite(loss) or loss > self.diverge_factor * max(self.initial_loss, 1.0)

    def logs(self, step: int, last: bool, diverged: bool) -> bool:
        """Whether the step gets a history row."""
        return step % self.log_every == 0 or last or diverged

    def evaluates(self, step: int, last: bool, diverged: bool) -> bool:
        """Whether the row also gets the full training and test metrics."""
        return not diverged and bool(last or (self.eval_every and step % self.eval_every == 0))

    @staticmethod
    def row(step: int, time_s: float, lr: float, loss: float, train_acc: float | None = None) -> dict:
        """The columns every logged row starts with."""
        row = {"step": step, "time_s": time_s, "lr": lr, "loss": loss}
        if train_acc is not None:
            row["train_acc"] = train_acc
        return row

    def message(self, loss: float, step: int) -> str:
        """Why the run diverged, as `Run.message` shows it."""
        return f"loss {loss:.4g} at step {step} (initial {self.initial_loss:.4g})"
