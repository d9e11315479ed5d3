"""What a phenomenon is: a falsifiable prediction, the runs that test it, and a verdict from the data.

A phenomenon owns no training code. It names the runs (`specs(size, archs, datasets)`), reads them
back as `Run`s and computes `verdict(runs) -> Verdict` from the measured numbers only. Sizes: `tiny`
(tests, seconds), `quick` (the app's live default, at most about 60 s on a 2-core CPU for the whole
phenomenon) and `full` (command line / GPU, closer to the papers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import DataSpec, RunSpec
from ..registry import UPLOAD_PREFIX
from ..train import Run

SIZES = ("tiny", "quick", "full")
DIRECTIONS = {
    "solvable": "Solvable idealised settings",
    "limits": "Tractable limits",
    "laws": "Simple macroscopic laws",
    "hyperparameters": "Hyperparameter theories",
    "universal": "Universal behaviours",
}


@dataclass(frozen=True)
class Verdict:
    """Whether the prediction held, with the measured number next to the predicted one.

    `per_run` holds one dict per run with at least key, arch, dataset, passed, measured (None when a
    run does not carry a per-run number). `details` holds further named numbers for tables and docs.
    """

    passed: bool
    measured: float
    expected: float
    tolerance: float
    explanation: str
    per_run: list[dict] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line: '<measured> (predicted <expected> +- <tolerance>): holds | fails'."""
        word = "holds" if self.passed else "fails"
        return f"{_fmt(self.measured)} (predicted {_fmt(self.expected)} \u00b1 {_fmt(self.tolerance)}): {word}"

    def to_dict(self) -> dict:
        return {"passed": bool(self.passed), "measured": _num(self.measured), "expected": _num(self.expected),
                "tolerance": _num(self.tolerance), "explanation": self.explanation,
                "per_run": [{k: _num(v) if isinstance(v, float) else v for k, v in r.items()} for r in self.per_run],
                "details": {k: _num(v) if isinstance(v, float) else v for k, v in self.details.items()}}


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.3g}"


def data_spec(name: str, n_train: int, n_test: int, **extra) -> DataSpec:
    """The DataSpec of a phenomenon's run; on uploaded data ("upload:<hash>") sized to fit the upload.

    An upload keeps up to a fifth of its rows (at least one) for the test split and gives the training split
    the rest, up to what the phenomenon asked for; generator settings in `extra` (dim, n_classes, ...) do not
    apply to it and are dropped.
    """
    if not name.startswith(UPLOAD_PREFIX):
        return DataSpec(name=name, n_train=n_train, n_test=n_test, **extra)
    from ..data import describe

    rows = describe(DataSpec(name=name)).n_available or 0
    test = max(1, min(n_test, rows // 5))
    return DataSpec(name=name, n_train=min(n_train, rows - test), n_test=test)


def minibatch(batch: int, data: DataSpec) -> int:
    """The minibatch size, or 0 (full batch) when the training split is no larger than it (small uploads)."""
    return 0 if batch >= data.n_train else batch


def run_row(run: Run, passed: bool | None, measured: float | None, **extra) -> dict:
    """A per-run verdict row."""
    s = run.spec
    return {"key": s.key(), "arch": s.model.arch, "dataset": s.data.name, "status": run.status,
            "passed": None if passed is None else bool(passed),
            "measured": None if measured is None or not math.isfinite(measured) else float(measured), **extra}


class Phenomenon:
    """Base class: subclasses set the class attributes and implement `_specs` and `verdict`."""

    name: str = ""
    title: str = ""  # a question or claim, e.g. "Does sharpness stop at 2/eta?"
    direction: str = "universal"  # key of DIRECTIONS
    sources: tuple[str, ...] = ()  # "Cohen et al. 2021, Gradient descent on neural networks typically occurs at the edge of stability"
    prediction: str = ""  # one sentence with its number
    measures: str = ""  # what we measure, in one or two sentences
    archs: tuple[str, ...] = ("mlp",)  # default grid
    datasets: tuple[str, ...] = ("digits",)
    allowed_archs: tuple[str, ...] | None = None  # None: same as archs
    allowed_datasets: tuple[str, ...] | None = None
    normalisation: str = ""  # what the normalised overlay divides by, for the toggle label
    needs_weights: bool = False  # the verdict or figures read run.weights (kept in the gallery)
    # tasks ("classification", "regression") of the user's own uploaded data ("upload:<hash>") this phenomenon
    # can run on; empty: none. Such a phenomenon builds its DataSpecs with `data_spec` (sized to the upload).
    upload_tasks: tuple[str, ...] = ()

    def specs(self, size: str = "quick", archs=None, datasets=None) -> list[RunSpec]:
        """The runs that test the prediction at a size, over chosen architectures and datasets."""
        if size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)} (got {size!r})")
        archs = tuple(archs) if archs else self.archs
        datasets = tuple(datasets) if datasets else self.datasets
        ok_a = self.allowed_archs or self.archs
        ok_d = self.allowed_datasets or self.datasets
        for a in archs:
            if a not in ok_a:
                raise ValueError(f"{self.name} can use architectures {', '.join(ok_a)} (got {a!r})")
        for d in datasets:
            if isinstance(d, str) and d.startswith(UPLOAD_PREFIX):
                self._check_upload(d, archs)
            elif d not in ok_d:
                raise ValueError(f"{self.name} can use datasets {', '.join(ok_d)} (got {d!r})")
        return self._specs(size, archs, datasets)

    def _check_upload(self, dataset: str, archs: tuple[str, ...]) -> None:
        """An uploaded dataset must be loaded, of a task this phenomenon handles, and fit every architecture."""
        from ..data import describe
        from ..models import ARCH_INPUTS

        if not self.upload_tasks:
            raise ValueError(f"{self.name} cannot run on uploaded data: its prediction needs a dataset it builds "
                             f"itself ({', '.join(self.allowed_datasets or self.datasets)})")
        info = describe(DataSpec(name=dataset))
        if info.task not in self.upload_tasks:
            raise ValueError(f"{self.name} needs {' or '.join(self.upload_tasks)} data; the uploaded dataset "
                             f"{info.description or dataset} is {info.task}")
        for a in archs:
            if info.kind not in ARCH_INPUTS[a]:
                ok = [x for x in (self.allowed_archs or self.archs) if info.kind in ARCH_INPUTS[x]]
                raise ValueError(f"architecture {a!r} cannot take the {info.kind} inputs of uploaded data; "
                                 f"for it {self.name} can use {', '.join(ok) or 'no architecture'}")

    def _specs(self, size: str, archs: tuple[str, ...], datasets: tuple[str, ...]) -> list[RunSpec]:
        raise NotImplementedError

    def verdict(self, runs: list[Run]) -> Verdict:
        raise NotImplementedError

    def figures(self, runs: list[Run], verdict: Verdict | None = None, normalised: bool = True,
                presentation: bool = False) -> list:
        """Plotly figures for this phenomenon (the prediction drawn as a reference on each)."""
        return []

    def card(self) -> dict:
        """Static description for catalogues and docs."""
        return {"name": self.name, "title": self.title, "direction": self.direction,
                "direction_title": DIRECTIONS[self.direction], "sources": list(self.sources),
                "prediction": self.prediction, "measures": self.measures,
                "archs": list(self.archs), "datasets": list(self.datasets)}
