"""Command line: `python -m learnmech_core COMMAND ...` (run, list, show, export, import, datasets, models).

Further commands (phenomena, verify, sweep, gallery) register themselves through `COMMANDS`.
Bad flags or values print one line, `learnmech: error: ...`, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import RunSpec

COMMANDS: dict[str, tuple] = {}  # name -> (add_arguments(parser), handler(args) -> int, help)


class UsageError(Exception):
    """A bad flag or value: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


# shorthand flags for `run`: flag -> dotted spec field
RUN_FLAGS = {
    "arch": "model.arch", "width": "model.width", "depth": "model.depth", "activation": "model.activation",
    "param": "model.param", "dataset": "data.name", "n_train": "data.n_train", "n_test": "data.n_test",
    "optimizer": "optim.name", "lr": "optim.lr", "steps": "optim.steps", "loss": "optim.loss",
    "batch_size": "optim.batch_size", "weight_decay": "optim.weight_decay", "schedule": "optim.schedule",
    "sharpness_every": "probes.sharpness_every", "seed": "seed", "device": "device",
}


def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    """Flags that build a RunSpec: --spec FILE, shorthands, and --set FIELD=VALUE for any field."""
    p.add_argument("--spec", help="JSON file with a RunSpec (flags below override it)")
    for flag, path in RUN_FLAGS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, help=f"sets {path}")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any spec field by dotted path, e.g. --set probes.topk_every=50")


def spec_from_args(args) -> RunSpec:
    """RunSpec from --spec, shorthand flags and --set (values parsed as in URLs)."""
    base = RunSpec()
    if args.spec:
        path = Path(args.spec)
        if not path.exists():
            raise UsageError(f"--spec file {args.spec} does not exist")
        base = RunSpec.from_json(path.read_text())
    params = {}
    for flag, path in RUN_FLAGS.items():
        if getattr(args, flag, None) is not None:
            params[path] = getattr(args, flag)
    for item in args.set:
        if "=" not in item:
            raise UsageError(f"--set needs FIELD=VALUE (got {item!r})")
        name, value = item.split("=", 1)
        params[name.strip()] = value.strip()
    merged = base.to_query()
    merged.update(params)
    unknown = [k for k in params if k not in _field_names()]
    if unknown:
        raise UsageError(f"unknown spec field {unknown[0]!r}")
    return RunSpec.from_query(merged)


def _field_names() -> set[str]:
    from .config import _field_types

    return set(_field_types())


def tqdm_progress(total: int, desc: str):
    """A (callback, close) pair drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)

    def on_progress(p):
        bar.update(p.step - bar.n)
        bar.set_postfix(loss=f"{p.row.get('loss', float('nan')):.4g}")

    return on_progress, bar.close


def _store(args):
    from .store import RunStore

    return RunStore(args.store) if getattr(args, "store", None) else RunStore()


def cmd_run(args) -> int:
    from .store import RunStore
    from .train import get_or_train, train

    spec = spec_from_args(args)
    on_progress, close = tqdm_progress(spec.optim.steps, spec.model.arch)
    try:
        if args.no_store:
            run = train(spec, on_progress=on_progress)
        else:
            run = get_or_train(_store(args), spec, on_progress=on_progress)
    finally:
        close()
    if args.out:
        tmp = RunStore(Path(args.out).parent / ".learnmech-export", readonly=False)
        tmp.put(run)
        tmp.export(run.key, args.out)
        import shutil

        shutil.rmtree(tmp.root, ignore_errors=True)
    summary = {"key": run.key, "status": run.status, "message": run.message, "steps": int(run.history["step"].max()),
               "final_loss": run.final("loss"), "final_test_acc": run.final("test_acc"),
               "seconds": round(run.timings.get("total_s", 0.0), 3)}
    if "sharpness" in run.history:
        summary["final_sharpness"] = run.final("sharpness")
    print(json.dumps(summary) if args.json else " ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def cmd_list(args) -> int:
    table = _store(args).list()
    if args.json:
        print(table.to_json(orient="records"))
    elif table.empty:
        print("no stored runs")
    else:
        cols = ["key", "arch", "dataset", "optimizer", "lr", "width", "seed", "steps", "status", "final_loss", "tags"]
        print(table[cols].to_string(index=False))
    return 0


def cmd_show(args) -> int:
    run = _store(args).get(args.key)
    if run is None:
        raise UsageError(f"no stored run with key {args.key}")
    print(run.spec.to_json(indent=2))
    print(f"status: {run.status} {run.message}")
    print(run.history.tail(args.tail).to_string(index=False))
    return 0


def cmd_export(args) -> int:
    store = _store(args)
    if not store.has(args.key):
        raise UsageError(f"no stored run with key {args.key}")
    print(store.export(args.key, args.out or f"{args.key}.zip"))
    return 0


def cmd_import(args) -> int:
    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"file {args.file} does not exist")
    print(_store(args).import_file(path))
    return 0


def cmd_datasets(args) -> int:
    from .config import DataSpec
    from .data import describe
    from .registry import DATASETS

    for name in DATASETS:
        info = describe(DataSpec(name=name, n_train=1, n_test=0))
        print(f"{name:20s} {info.task:15s} {info.kind:7s} {str(info.input_shape):12s} {info.description}")
    return 0


def cmd_models(args) -> int:
    from .models import ARCH_CLASSES, ARCH_INPUTS
    from .registry import ACTIVATIONS, PARAMETRISATIONS

    for name, cls in ARCH_CLASSES.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:12s} inputs: {'/'.join(ARCH_INPUTS[name]):21s} {doc}")
    print(f"activations: {', '.join(ACTIVATIONS)}; parametrisations: {', '.join(PARAMETRISATIONS)}")
    return 0


def _register_builtin():
    def run_args(p):
        add_spec_arguments(p)
        p.add_argument("--out", help="also write the run to this .zip file")
        p.add_argument("--no-store", action="store_true", help="do not read or write the run store")
        p.add_argument("--json", action="store_true")

    COMMANDS.update({
        "run": (run_args, cmd_run, "train one run (spec from flags or --spec FILE)"),
        "list": (lambda p: p.add_argument("--json", action="store_true"), cmd_list, "list stored runs"),
        "show": (lambda p: (p.add_argument("key"), p.add_argument("--tail", type=int, default=10)), cmd_show,
                 "show one stored run"),
        "export": (lambda p: (p.add_argument("key"), p.add_argument("--out")), cmd_export, "write a run to one .zip"),
        "import": (lambda p: p.add_argument("file"), cmd_import, "read a run .zip into the store"),
        "datasets": (lambda p: None, cmd_datasets, "list datasets"),
        "models": (lambda p: None, cmd_models, "list architectures"),
    })


def build_parser() -> argparse.ArgumentParser:
    _register_builtin()
    _register_extensions()
    parser = _Parser(prog="python -m learnmech_core", description="learnmech: learning mechanics explorer")
    parser.add_argument("--store", help="run store folder (default LEARNMECH_HOME or ~/.cache/learnmech)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (add, _, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--store", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        add(p)
    return parser


def _register_extensions():
    """Commands that live beside their feature (phenomena, sweeps, gallery), when present."""
    import importlib

    for module in ("cli_phenomena", "cli_sweep", "cli_gallery"):
        try:
            mod = importlib.import_module(f".{module}", __package__)
        except ModuleNotFoundError as err:
            if err.name and err.name.endswith(module):
                continue
            raise
        mod.register(COMMANDS)


def set_threads_from_env() -> None:
    """Honour LEARNMECH_THREADS (torch intra-op threads, process-wide; set once at start-up)."""
    import os

    value = os.environ.get("LEARNMECH_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise UsageError(f"LEARNMECH_THREADS must be a positive integer (got {value!r})")
        import torch

        torch.set_num_threads(int(value))


def main(argv: list[str] | None = None) -> int:
    try:
        set_threads_from_env()
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command][1](args)
    except UsageError as err:
        print(f"learnmech: error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"learnmech: error: {err}", file=sys.stderr)
        return 2
