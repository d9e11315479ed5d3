"""`phenomena` (list the catalogue) and `verify NAME` (run it, store its runs, print the verdict).

`verify` exits 0 whether or not the prediction holds (a failed prediction is a result) and 1 only on
errors while running; bad names or sizes are usage errors (exit 2).
"""

from __future__ import annotations

import json
import sys

from .cli import UsageError, help_when_shown
from .phenomena.base import SIZES
from .registry import ARCHITECTURES, DATASETS, DEVICES


def cmd_phenomena(args) -> int:
    from . import phenomena

    for ph in phenomena.all_phenomena():
        if args.json:
            print(json.dumps(ph.card()))
        else:
            print(f"{ph.name:28s} [{ph.direction:15s}] {ph.title}")
    return 0


def format_table(result) -> str:
    """The verdict as text: one line per run (with its own criterion), per seed, per clause, then overall."""
    lines = [f"{'key':16s} {'seed':>4s} {'arch':12s} {'dataset':18s} {'status':9s} {'measured':>10s}"
             "  verdict  criterion"]
    for r in result.verdict.per_run:
        measured = "" if r.get("measured") is None else f"{r['measured']:.4g}"
        word = {True: "holds", False: "fails", None: ""}[r.get("passed")]
        lines.append(f"{r['key']:16s} {r.get('seed', 0):>4} {r['arch']:12s} {r['dataset']:18s} "
                     f"{r.get('status', ''):9s} {measured:>10s}  {word:7s}  {r.get('criterion', '')}")
    if len(result.per_seed) > 1:
        for seed, sv in sorted(result.per_seed.items()):
            lines.append(f"seed {seed}: {sv.summary()}")
    v = result.verdict
    for c in v.clauses:
        lines.append(f"  - {c.claim}: {c.line()}" + (f"  [{c.note}]" if c.note else ""))
    lines.append(f"{result.name}: {v.summary()}  [{result.seconds:.1f} s]")
    lines.append(v.explanation)
    return "\n".join(lines)


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' or '0..2' -> (0, 1, 2); a usage error names the bad value."""
    out: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if ".." in part:
                lo, hi = (int(x) for x in part.split(".."))
                out += list(range(lo, hi + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise UsageError(f"--seeds must be whole numbers such as 0,1,2 or 0..2 (got {text!r})") from None
    if not out or any(s < 0 for s in out) or len(set(out)) != len(out):
        raise UsageError(f"--seeds must be distinct whole numbers >= 0 (got {text!r})")
    return tuple(out)


def cmd_verify(args) -> int:
    from . import phenomena
    from .cli import _store
    from .phenomena.runner import run_phenomenon

    try:
        phenomena.get(args.name)
        archs = args.arch.split(",") if args.arch else None
        datasets = args.dataset.split(",") if args.dataset else None
        seeds = parse_seeds(args.seeds)
        phenomena.get(args.name).specs(args.size, archs, datasets)  # validate before any work
    except ValueError as err:
        raise UsageError(str(err)) from None
    from tqdm import tqdm

    bar = tqdm(desc=args.name, file=sys.stderr, leave=False, unit="run")

    def progress(done, total, key):
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = run_phenomenon(args.name, args.size, archs, datasets, store=_store(args), on_progress=progress,
                                device=args.device, seeds=seeds)
    except Exception as err:  # an error while running, not a failed prediction
        bar.close()
        print(f"learnmech: error while running {args.name}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    bar.close()
    print(json.dumps(result.to_json_dict()) if args.json else format_table(result))
    return 0


def phenomenon_names() -> str:
    """Every registered phenomenon, comma-separated (imports them all: for --help only)."""
    from . import phenomena

    return ", ".join(phenomena.names())


def register(commands: dict) -> None:
    def verify_args(p):
        help_when_shown(p.add_argument("name", help="a phenomenon"), lambda: f"one of {phenomenon_names()}")
        p.add_argument("--size", default="quick", choices=SIZES, help="run grid size (default quick)")
        p.add_argument("--arch", help=f"comma-separated architectures from {', '.join(ARCHITECTURES)} "
                       "(default: the phenomenon's grid)")
        p.add_argument("--dataset", help=f"comma-separated datasets from {', '.join(DATASETS)} "
                       "(default: the phenomenon's grid)")
        p.add_argument("--device", choices=DEVICES, help="override the runs' device")
        p.add_argument("--seeds", default="0,1,2",
                       help="replicates of the whole grid, e.g. 0,1,2 or 0..4 (default 0,1,2); the prediction holds "
                            "when every clause holds together on at least 2 of 3 seeds")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    commands["phenomena"] = (lambda p: p.add_argument("--json", action="store_true", help="one JSON card a line"),
                             cmd_phenomena, "list the phenomena")
    commands["verify"] = (verify_args, cmd_verify, "run a phenomenon and print its verdict")
