"""Command line: `learnmech COMMAND ...` or `python -m learnmech_core COMMAND ...` (run, list, show, export,
import, migrate, datasets, models).

Further commands (phenomena, verify, sweep, gallery) register themselves through `COMMANDS`. Exit
status: 0 on success (a diverged run or a failed prediction is a result: 0, with its status printed),
1 when a run failed or an error stopped the work, 2 for bad flags or values (one line,
`learnmech: error: ...`), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from .config import RunSpec, _field_types
from .registry import (
    ACTIVATIONS,
    ARCHITECTURES,
    DATASETS,
    DEVICES,
    LOSSES,
    OPTIMIZERS,
    PARAMETRISATIONS,
    SCHEDULES,
)
from .version import __version__

COMMANDS: dict[str, tuple] = {}  # name -> (add_arguments(parser), handler(args) -> int, help)


class UsageError(Exception):
    """A bad flag or value: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)

    def format_help(self):
        for action in self._actions:  # help that needs a slow registry is written only when shown
            if callable(getattr(action, "help_from", None)):
                action.help = action.help_from()
        return super().format_help()


def help_when_shown(action: argparse.Action, text: Callable[[], str]) -> None:
    """Compute an option's help text only when --help is shown (e.g. the phenomenon names)."""
    action.help_from = text


# shorthand flags for `run`: flag -> dotted spec field
RUN_FLAGS = {
    "arch": "model.arch", "width": "model.width", "depth": "model.depth", "activation": "model.activation",
    "param": "model.param", "dataset": "data.name", "n_train": "data.n_train", "n_test": "data.n_test",
    "optimizer": "optim.name", "lr": "optim.lr", "steps": "optim.steps", "loss": "optim.loss",
    "batch_size": "optim.batch_size", "weight_decay": "optim.weight_decay", "schedule": "optim.schedule",
    "sharpness_every": "probes.sharpness_every", "seed": "seed", "device": "device",
}
# allowed names of the spec fields that take one (the registries shared with the specs and the app)
FIELD_CHOICES = {
    "model.arch": ARCHITECTURES, "model.activation": ACTIVATIONS, "model.param": PARAMETRISATIONS,
    "data.name": DATASETS, "optim.name": OPTIMIZERS, "optim.loss": LOSSES, "optim.schedule": SCHEDULES,
    "device": DEVICES,
}
_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text"}


def field_metavar(path: str) -> str:
    """NAME for fields with a registry of names, else INT, FLOAT, BOOL or TEXT."""
    if path in FIELD_CHOICES:
        return "NAME"
    hint = _field_types()[path]
    return {"int": "INT", "float": "FLOAT", "bool": "BOOL"}.get(getattr(hint, "__name__", ""), "TEXT")


def field_help(path: str, default) -> str:
    """'model.arch: one of mlp, cnn, ... (default mlp)' for a dotted spec field."""
    if path in FIELD_CHOICES:
        allowed = f"one of {', '.join(FIELD_CHOICES[path])}"
    else:
        hint = _field_types()[path]
        allowed = _TYPE_WORDS.get(getattr(hint, "__name__", ""), str(hint))
    return f"{path}: {allowed} (default {default})"


def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    """Flags that build a RunSpec: --spec FILE, shorthands, and --set FIELD=VALUE for any field."""
    p.add_argument("--spec", help="JSON file with a RunSpec (flags below override it)")
    defaults = RunSpec().flat()
    for flag, path in RUN_FLAGS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, metavar=field_metavar(path),
                       help=field_help(path, defaults[path]))
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any spec field by dotted path, e.g. --set probes.topk_every=50; fields: "
                   + ", ".join(_field_types()))


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
    unknown = [k for k in params if k not in _field_types()]
    if unknown:
        raise UsageError(f"unknown spec field {unknown[0]!r}")
    return RunSpec.from_query(merged)


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
    steps = int(run.history["step"].max()) if "step" in run.history and len(run.history) else 0  # failed at once: 0
    summary = {"key": run.key, "status": run.status, "message": run.message, "steps": steps,
               "final_loss": run.final("loss"), "final_test_acc": run.final("test_acc"),
               "seconds": round(run.timings.get("total_s", 0.0), 3)}
    if "sharpness" in run.history:
        summary["final_sharpness"] = run.final("sharpness")
    print(json.dumps(summary) if args.json else " ".join(f"{k}={v}" for k, v in summary.items()))
    if run.status == "failed":  # a diverged run is a result (exit 0); a failed one is an error
        print(f"learnmech: error: the run failed: {run.message}", file=sys.stderr)
        return 1
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


def cmd_migrate(args) -> int:
    from .store import migrate_parquet

    root = Path(args.store) if getattr(args, "store", None) else None
    changed = migrate_parquet(root)
    print(f"{len(changed)} Parquet file(s) rewritten with typed columns")
    for path in changed:
        print(path)
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
        p.add_argument("--json", action="store_true", help="print one JSON object")

    COMMANDS.update({
        "run": (run_args, cmd_run, "train one run (spec from flags or --spec FILE)"),
        "list": (lambda p: p.add_argument("--json", action="store_true", help="print JSON records"), cmd_list,
                 "list stored runs"),
        "show": (lambda p: (p.add_argument("key", help="run key (see list)"),
                            p.add_argument("--tail", type=int, default=10, help="history rows to print (default 10)")),
                 cmd_show, "show one stored run"),
        "export": (lambda p: (p.add_argument("key", help="run key (see list)"),
                              p.add_argument("--out", help="zip file to write (default KEY.zip)")),
                   cmd_export, "write a run to one .zip"),
        "import": (lambda p: p.add_argument("file", help="a .zip written by export"), cmd_import,
                   "read a run .zip into the store"),
        "migrate": (lambda p: None, cmd_migrate,
                    "rewrite the store's Parquet files with typed columns (stores written before 0.1; "
                    "--store learnmech_core/gallery for the shipped gallery)"),
        "datasets": (lambda p: None, cmd_datasets, "list datasets"),
        "models": (lambda p: None, cmd_models, "list architectures"),
    })


def build_parser() -> argparse.ArgumentParser:
    _register_builtin()
    _register_extensions()
    prog = "python -m learnmech_core" if Path(sys.argv[0]).name == "__main__.py" else "learnmech"
    parser = _Parser(prog=prog, description="learnmech: learning mechanics explorer")
    parser.add_argument("--version", action="version", version=f"learnmech {__version__}")
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
    except KeyboardInterrupt:
        print("learnmech: interrupted", file=sys.stderr)
        return 130
