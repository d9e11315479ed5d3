"""`python -m learnmech_core sweep`: expand a base spec over axes and train the missing runs.

    python -m learnmech_core sweep --base spec.json --axis lr=0.01,0.02,0.05 --axis seed=0..3 --backend auto

Axes are dotted spec fields or aliases (lr, width, depth, seed, batch_size, param, arch, dataset, ...);
values are comma lists or inclusive integer ranges `a..b`. Finished runs are read from the store, new
ones written as they finish, so rerunning an interrupted command resumes it. Prints one line per run
(or JSON with --json).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .cli import UsageError, add_spec_arguments, spec_from_args
from .sweep import AXIS_ALIASES, BACKENDS


def add_arguments(p) -> None:
    """Flags of the sweep command."""
    p.add_argument("--base", help="JSON file with the base RunSpec (same as --spec)")
    add_spec_arguments(p)
    p.add_argument("--sweep", help="JSON file with a whole sweep ({'base': spec, 'axes': {field: [values]}})")
    p.add_argument("--axis", action="append", default=[], metavar="NAME=VALUES",
                   help="an axis, e.g. lr=0.01,0.02 or seed=0..3 (repeat; the last axis varies fastest); NAME is "
                   f"a dotted spec field or one of {', '.join(AXIS_ALIASES)}")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="how to train the runs (default auto)")
    p.add_argument("--workers", type=int, help="process-pool size (default: usable cores)")
    p.add_argument("--tag", action="append", default=[], help="tag stored runs (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and the backend plan, train nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_sweep(args):
    """SweepSpec from --sweep FILE, or from the base spec flags and --axis."""
    from .sweep import SweepSpec, parse_axis, sweep_from_json

    if args.sweep:
        if args.axis or args.base or args.spec:
            raise UsageError("--sweep FILE already holds the base and the axes; drop --base/--spec/--axis")
        path = Path(args.sweep)
        if not path.exists():
            raise UsageError(f"--sweep file {args.sweep} does not exist")
        return sweep_from_json(path.read_text())
    if args.base and args.spec:
        raise UsageError("give the base spec once: --base or --spec")
    if args.base:
        args.spec = args.base
    if not args.axis:
        raise UsageError("a sweep needs at least one --axis NAME=VALUES (e.g. --axis lr=0.01,0.02)")
    axes = [parse_axis(text) for text in args.axis]
    return SweepSpec(spec_from_args(args), axes)


def _progress_bar(total: int):
    """(on_progress(done, total, key), close) drawing a tqdm bar over runs on stderr."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc="sweep", unit="run", file=sys.stderr, leave=False, dynamic_ncols=True)

    def on_progress(done, total, key):
        """Move the bar to the number of finished runs."""
        bar.update(done - bar.n)
        bar.set_postfix(run=key)

    return on_progress, bar.close


def _summary_rows(sweep, runs) -> list[dict]:
    """One summary dict per run: key, axis values, status and final metrics."""
    rows = []
    for point, run in zip(sweep.points(), runs, strict=False):
        row = {"key": run.key, **point, "status": run.status, "final_loss": run.final("loss"),
               "final_test_acc": run.final("test_acc")}
        if "sharpness" in run.history:
            row["final_sharpness"] = run.final("sharpness")
        rows.append(row)
    return rows


def cmd_sweep(args) -> int:
    """Handler of `sweep`."""
    from .store import RunStore
    from .sweep import plan, run_sweep

    sweep = build_sweep(args)
    store = RunStore(args.store) if getattr(args, "store", None) else RunStore()
    if args.dry_run:
        missing = [s for s in sweep.specs() if not store.has(s.key())]
        batches = [{"backend": kind, "runs": [s.key() for s in specs]} for kind, specs in plan(missing, args.backend)]
        print(json.dumps({"runs": sweep.table().to_dict(orient="records"), "stored": len(sweep) - len(missing),
                          "plan": batches}, default=str))
        return 0
    on_progress, close = _progress_bar(len(sweep))
    started = time.perf_counter()
    stored_before = sum(store.has(k) for k in sweep.keys())  # noqa: SIM118 (a Sweep, not a dict)
    try:
        runs = run_sweep(sweep, backend=args.backend, on_progress=on_progress, store=store, tags=args.tag,
                         workers=args.workers)
    except KeyboardInterrupt:
        close()
        print("learnmech: interrupted; finished runs are stored, rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        close()
    rows = _summary_rows(sweep, runs)
    seconds = round(time.perf_counter() - started, 3)
    if args.json:
        print(json.dumps({"runs": rows, "reused": stored_before, "trained": len(sweep) - stored_before,
                          "seconds": seconds, "backend": args.backend}, default=float))
    else:
        import pandas as pd

        print(pd.DataFrame(rows).to_string(index=False))
        print(f"{len(sweep)} runs: {stored_before} from the store, {len(sweep) - stored_before} trained "
              f"in {seconds:g} s ({args.backend})")
    return 0


def register(commands: dict) -> None:
    """Add `sweep` to the CLI's command table."""
    commands["sweep"] = (add_arguments, cmd_sweep, "train a sweep of runs over axes (--axis lr=0.01,0.02)")
