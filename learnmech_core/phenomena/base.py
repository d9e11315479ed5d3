"""What a phenomenon is: a falsifiable prediction, the runs that test it, and a verdict from the data.

A phenomenon owns no training code. It names the runs (`specs(size, archs, datasets)`), reads them
back as `Run`s and computes `verdict(runs) -> Verdict` from the measured numbers only. Sizes: `tiny`
(tests, seconds), `quick` (the app's live default, at most about 60 s on a 2-core CPU for the whole
phenomenon) and `full` (command line / GPU, closer to the papers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

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
class Criterion:
    """How one measured number is judged, fixed before the runs; `text` reads as the criterion reads.

    Kinds: `within` (|x - target| <= tol, `relative`: tol x |target|), `factor` (target / f <= x <= target x f),
    `at_least` (x >= bound), `at_most` (x <= bound), `between` (lo <= x <= hi). A NaN measurement fails.
    """

    kind: str
    target: float = float("nan")  # within, factor
    tol: float = float("nan")  # within: the tolerance; factor: the factor
    lo: float = float("nan")  # at_least, between
    hi: float = float("nan")  # at_most, between
    relative: bool = False  # within: tol is a fraction of |target|
    units: str = ""  # appended to the numbers in `text`, e.g. "%" or " steps"

    def __post_init__(self):
        if self.kind not in CRITERIA:
            raise ValueError(f"criterion kind must be one of {', '.join(CRITERIA)} (got {self.kind!r})")

    def holds(self, x) -> bool:
        if x is None or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
            return False
        x = float(x)
        if self.kind == "within":
            tol = self.tol * abs(self.target) if self.relative else self.tol
            return abs(x - self.target) <= tol
        if self.kind == "factor":
            return self.target / self.tol <= x <= self.target * self.tol
        if self.kind == "at_least":
            return x >= self.lo
        if self.kind == "at_most":
            return x <= self.hi
        return self.lo <= x <= self.hi

    @property
    def text(self) -> str:
        u = self.units
        if self.kind == "within":
            tol = f"{self.tol:.0%}" if self.relative else f"{_fmt(self.tol)}{u}"
            return f"within {tol} of {_fmt(self.target)}{u}"
        if self.kind == "factor":
            return (f"within {_fmt(self.tol)}\u00d7 of {_fmt(self.target)}{u} "
                    f"({_fmt(self.target / self.tol)}\u2013{_fmt(self.target * self.tol)})")
        if self.kind == "at_least":
            return f"\u2265 {_fmt(self.lo)}{u}"
        if self.kind == "at_most":
            return f"\u2264 {_fmt(self.hi)}{u}"
        return f"between {_fmt(self.lo)} and {_fmt(self.hi)}{u}"

    def bounds(self) -> tuple[float, float]:
        """(lowest, highest) value that holds; infinite where the criterion is one-sided."""
        inf = float("inf")
        if self.kind == "within":
            tol = self.tol * abs(self.target) if self.relative else self.tol
            return self.target - tol, self.target + tol
        if self.kind == "factor":
            return self.target / self.tol, self.target * self.tol
        if self.kind == "at_least":
            return self.lo, inf
        if self.kind == "at_most":
            return -inf, self.hi
        return self.lo, self.hi

    def expected_tolerance(self) -> tuple[float, float]:
        """(expected, tolerance) for the flat verify JSON: the target and its band; bounds have no tolerance."""
        nan = float("nan")
        if self.kind == "within":
            return self.target, self.tol * abs(self.target) if self.relative else self.tol
        if self.kind == "factor":
            return self.target, self.tol
        if self.kind == "at_least":
            return self.lo, nan
        if self.kind == "at_most":
            return self.hi, nan
        return (self.lo + self.hi) / 2, (self.hi - self.lo) / 2


CRITERIA = ("within", "factor", "at_least", "at_most", "between")


def within(target: float, tol: float, relative: bool = False, units: str = "") -> Criterion:
    return Criterion("within", target=target, tol=tol, relative=relative, units=units)


def factor(target: float, f: float, units: str = "") -> Criterion:
    return Criterion("factor", target=target, tol=f, units=units)


def at_least(bound: float, units: str = "") -> Criterion:
    return Criterion("at_least", lo=bound, units=units)


def at_most(bound: float, units: str = "") -> Criterion:
    return Criterion("at_most", hi=bound, units=units)


def between(lo: float, hi: float, units: str = "") -> Criterion:
    return Criterion("between", lo=lo, hi=hi, units=units)


@dataclass(frozen=True)
class Clause:
    """One clause of a claim, judged on its own: `passed` None means it cannot be tested at this size.

    `quantity` names the measured number ("median sharpness \u00d7 \u03b7/2"); `criterion` is fixed in the
    module before any run; `needs` says what would test an untested clause (e.g. "full size on a GPU").
    """

    claim: str
    quantity: str
    criterion: Criterion
    measured: float | None
    passed: bool | None = None
    note: str = ""
    needs: str = ""

    @staticmethod
    def judge(claim: str, quantity: str, criterion: Criterion, measured, note: str = "") -> Clause:
        """A clause judged by its criterion (a NaN or missing measurement fails)."""
        m = None if measured is None or not math.isfinite(float(measured)) else float(measured)
        return Clause(claim, quantity, criterion, m, criterion.holds(m), note)

    @staticmethod
    def untested(claim: str, quantity: str, criterion: Criterion, needs: str, measured=None) -> Clause:
        m = None if measured is None or not math.isfinite(float(measured)) else float(measured)
        return Clause(claim, quantity, criterion, m, None, needs=needs)

    def line(self) -> str:
        """'<quantity> = <measured> (predicted: <criterion>): holds | fails | not tested (needs ...)'."""
        word = {True: "holds", False: "fails", None: f"not tested here ({self.needs})" if self.needs else
                "not tested here"}[self.passed]
        return f"{self.quantity} = {_fmt(self.measured)} (predicted: {self.criterion.text}): {word}"

    def to_dict(self) -> dict:
        return {"claim": self.claim, "quantity": self.quantity, "criterion": self.criterion.text,
                "measured": _num(self.measured), "passed": self.passed, "note": self.note, "needs": self.needs}


@dataclass(frozen=True)
class Source:
    """The sentence of the source paper that a phenomenon's criterion tests, with its citation."""

    citation: str
    quote: str

    def to_dict(self) -> dict:
        return {"citation": self.citation, "quote": self.quote}


@dataclass(frozen=True)
class Tried:
    """A set-up that was tried and did not reproduce the claim, kept on the page under "What we tried"."""

    setup: str
    outcome: str
    seeds: str = ""


@dataclass(frozen=True)
class Verdict:
    """Whether the prediction held: every clause of the claim judged by its criterion, from measured numbers.

    `clauses[0]` is the headline: `measured`, `expected`, `tolerance` (the flat fields of the verify JSON)
    come from it. `passed` is True when every tested clause holds and at least one was tested; a clause that
    cannot be tested at this size (passed None) is named in `summary()`. `per_run` holds one dict per run
    with at least key, arch, dataset, passed, measured and `criterion` (that run's own criterion, as text).
    Build verdicts with `Verdict.of(clauses, ...)`.
    """

    passed: bool
    measured: float
    expected: float
    tolerance: float
    explanation: str
    per_run: list[dict] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    clauses: list[Clause] = field(default_factory=list)

    @staticmethod
    def of(clauses: list[Clause], explanation: str, per_run: list[dict] | None = None,
           details: dict | None = None) -> Verdict:
        """The verdict of a list of judged clauses (the first is the headline)."""
        if not clauses:
            raise ValueError("a verdict needs at least one clause")
        head = clauses[0]
        expected, tolerance = head.criterion.expected_tolerance()
        tested = [c for c in clauses if c.passed is not None]
        passed = bool(tested) and all(c.passed for c in tested)
        measured = float("nan") if head.measured is None else head.measured
        return Verdict(passed, measured, expected, tolerance, explanation, list(per_run or []), dict(details or {}),
                       list(clauses))

    @staticmethod
    def none(explanation: str, clauses: list[Clause] | None = None) -> Verdict:
        """A failed verdict when there is nothing to judge (no runs, no measurement)."""
        return Verdict(False, float("nan"), float("nan"), float("nan"), explanation, clauses=list(clauses or []))

    @property
    def untested(self) -> list[Clause]:
        return [c for c in self.clauses if c.passed is None]

    def word(self) -> str:
        """holds | fails | holds at this size, N clause(s) not tested."""
        if not self.passed:
            return "fails"
        return "holds" if not self.untested else f"holds here; {len(self.untested)} clause(s) not tested"

    def summary(self) -> str:
        """The headline as the criterion reads: '<quantity> = <measured> (predicted: <criterion>): holds'."""
        if not self.clauses:
            return f"{_fmt(self.measured)}: {self.word()}"
        head = self.clauses[0]
        text = f"{head.quantity} = {_fmt(head.measured)} (predicted: {head.criterion.text})"
        others = len(self.clauses) - 1
        failed = [c for c in self.clauses if c.passed is False]
        if others and failed and not (len(failed) == 1 and failed[0] is head):
            text += f"; {len(failed)} of {len(self.clauses)} clauses fail"
        seeds = sum(k.startswith("seed") and k.endswith("_measured") for k in self.details)
        if seeds and not self.passed and not failed:  # each clause held on most seeds, the whole claim did not
            whole = round(self.details.get("pass_fraction", 0.0) * seeds)
            text += f"; every clause together on {whole} of {seeds} seeds"
        return f"{text}: {self.word()}"

    def to_dict(self) -> dict:
        return {"passed": bool(self.passed), "measured": _num(self.measured), "expected": _num(self.expected),
                "tolerance": _num(self.tolerance), "explanation": self.explanation,
                "criterion": self.clauses[0].criterion.text if self.clauses else "",
                "clauses": [c.to_dict() for c in self.clauses],
                "per_run": [{k: _num(v) if isinstance(v, float) else v for k, v in r.items()} for r in self.per_run],
                "details": {k: _num(v) if isinstance(v, float) else v for k, v in self.details.items()}}


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x over finite positive points (NaN if fewer than 3)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0]) if ok.sum() >= 3 else float("nan")


def worst_value(values, criterion) -> float:
    """Of several measurements of one clause (one per group), the one its criterion judges worst: NaN if any
    is NaN or there is none, else the one deepest outside (or nearest the edge of) the accepted range."""
    values = [float(v) for v in values]
    if not values or not np.all(np.isfinite(values)):
        return float("nan")
    lo, hi = criterion.bounds()
    return min(values, key=lambda v: min(v - lo, hi - v))


def largest(values) -> float:
    """The largest value, NaN if there is none or any is NaN (a group that was not measured)."""
    values = np.asarray(values, dtype=float)
    return float(values.max()) if len(values) and np.all(np.isfinite(values)) else float("nan")


def combine_seeds(verdicts: dict[int, Verdict], min_fraction: float = 2 / 3) -> Verdict:
    """One verdict over seeds: the prediction holds when it holds whole (every clause) on at least `min_fraction`
    of the seeds, each seed judged from its own runs alone (`pass_fraction` in the details).

    Each clause is listed with its per-seed results in its note; its own mark says whether it held on at least
    `min_fraction` of the seeds, and its measured number is the median over seeds. Clause marks alone never make
    the verdict: three seeds that each fail a different clause give three ticked clauses and a failed prediction
    (no seed reproduced the whole claim). Per-run rows of every seed are kept (each carries its `seed`). With one
    seed this is that seed's verdict.
    """
    seeds = sorted(verdicts)
    if len(seeds) == 1:
        return verdicts[seeds[0]]
    need = math.ceil(min_fraction * len(seeds) - 1e-9)
    first = verdicts[seeds[0]]
    clauses = []
    for i, head in enumerate(first.clauses):
        per = [verdicts[s].clauses[i] if i < len(verdicts[s].clauses) else None for s in seeds]
        values = [c.measured for c in per if c is not None and c.measured is not None]
        judged = [c.passed for c in per if c is not None and c.passed is not None]
        passed = None if not judged else sum(judged) >= need
        note = "per seed: " + ", ".join(
            f"{s}: {_fmt(None if c is None else c.measured)} {'' if c is None else _mark(c.passed)}"
            for s, c in zip(seeds, per, strict=True))
        clauses.append(Clause(head.claim, head.quantity, head.criterion,
                              float(np.median(values)) if values else None, passed, note, head.needs))
    holding = [s for s in seeds if verdicts[s].passed]
    explanation = (f"Seeds {', '.join(map(str, seeds))}: the whole prediction (every clause) holds on "
                   f"{len(holding)} of {len(seeds)}" + (f" (seed {', '.join(map(str, holding))})" if holding else "")
                   + f"; it needs {need}. "
                   + " ".join(f"Seed {s}: {verdicts[s].explanation}" for s in seeds[:1]))
    rows = [r for s in seeds for r in verdicts[s].per_run]
    details = {"pass_fraction": len(holding) / len(seeds),
               **{f"seed{s}_measured": verdicts[s].measured for s in seeds}}
    if not clauses:
        return Verdict(False, float("nan"), float("nan"), float("nan"), explanation, rows, details)
    combined = Verdict.of(clauses, explanation, rows, details)
    return replace(combined, passed=len(holding) >= need)


def _mark(passed) -> str:
    return {True: "\u2713", False: "\u2717", None: "\u2013"}[passed]


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


def run_row(run: Run, passed: bool | None, measured: float | None, criterion: Criterion | str | None = None,
            **extra) -> dict:
    """A per-run verdict row; `criterion` is the run's own criterion (what `measured` is judged by)."""
    s = run.spec
    text = criterion.text if isinstance(criterion, Criterion) else (criterion or "")
    return {"key": s.key(), "arch": s.model.arch, "dataset": s.data.name, "seed": s.seed, "status": run.status,
            "passed": None if passed is None else bool(passed),
            "measured": None if measured is None or not math.isfinite(measured) else float(measured),
            "criterion": text, **extra}


def reseed(specs: list[RunSpec], seed: int) -> list[RunSpec]:
    """The same grid for replicate `seed`: fresh initialisation and data draw, none shared with another seed.

    Replicate 0 is the grid as built. Replicate r shifts every run's seed by r x (largest seed in the grid +
    1), so grids that already use seeds 0..k-1 internally (seed pairs, say) get k new ones, and the data seed
    by r (the same for every run of the replicate, so runs that share data keep sharing it).
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0 (got {seed})")
    if seed == 0 or not specs:
        return list(specs)
    stride = max(s.seed for s in specs) + 1
    return [s.replace(**{"seed": s.seed + seed * stride, "data.seed": s.data.seed + seed}) for s in specs]


class Phenomenon:
    """Base class: subclasses set the class attributes and implement `_specs` and `verdict`."""

    name: str = ""
    title: str = ""  # a question or claim, e.g. "Does sharpness stop at 2/eta?"
    direction: str = "universal"  # key of DIRECTIONS
    sources: tuple[str, ...] = ()  # full citations: "Cohen et al. 2021, Gradient descent on neural networks ..."
    source: Source | None = None  # the sentence the criterion tests (quoted) and its citation
    tried: tuple[Tried, ...] = ()  # set-ups that did not reproduce the claim ("What we tried")
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

    def specs(self, size: str = "quick", archs=None, datasets=None, seed: int = 0) -> list[RunSpec]:
        """The runs that test the prediction at a size, over chosen architectures and datasets, for one seed.

        Seed 0 is the grid as built; other seeds are independent replicates of it (`reseed`).
        """
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a whole number >= 0 (got {seed!r})")
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
        return self._specs(size, archs, datasets, seed)

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

    def _specs(self, size: str, archs: tuple[str, ...], datasets: tuple[str, ...], seed: int = 0) -> list[RunSpec]:
        """The grid for one seed: seed 0's grid (`_grid`) reseeded. Override when building a spec measures
        something seed-dependent (catapult measures each initial model's sharpness)."""
        return reseed(self._grid(size, archs, datasets), seed)

    def _grid(self, size: str, archs: tuple[str, ...], datasets: tuple[str, ...]) -> list[RunSpec]:
        """Seed 0's runs at a size over the chosen architectures and datasets."""
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
                "source": self.source.to_dict() if self.source else None,
                "tried": [{"setup": t.setup, "outcome": t.outcome, "seeds": t.seeds} for t in self.tried],
                "prediction": self.prediction, "measures": self.measures,
                "archs": list(self.archs), "datasets": list(self.datasets)}
