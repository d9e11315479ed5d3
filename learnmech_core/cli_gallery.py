"""`gallery build`: precompute every phenomenon at `quick` size into the gallery (the app's instant view).

The gallery is an ordinary RunStore in `store.gallery_root()` (`learnmech_core/gallery/`, package data)
plus `verdicts.json` (one verify-style object per phenomenon, so the home page needs no computation),
the home page's card images `cards/NAME.svg` with `cards/index.json` (the run keys each image was drawn
from: seed 0's), and the generated `docs/phenomena.md`. Weights are kept only for phenomena whose
verdicts read them (`Phenomenon.needs_weights`), keeping the gallery a few MB.

`gallery showcase` trains the one run the Spectra page opens on (Explore's default with every spectrum
recorded, tagged `showcase:spectra`). `gallery thumbnails` redraws the card images from the stored runs
without training: each is the phenomenon's first figure for seed 0 drawn at card size
(`plots.runs.thumbnail`) by plotly.js in headless Chromium (`plots.render`), and the labels that overlap
or are clipped at that size are listed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .cli import UsageError, help_when_shown
from .cli_phenomena import phenomenon_names
from .phenomena.base import SIZES

DOCS = Path(__file__).resolve().parent.parent / "docs" / "phenomena.md"


def build_gallery(root: Path, names: list[str], size: str = "quick", log=print, fresh: bool = False,
                  seeds=(0, 1, 2)) -> dict:
    """Train (or reuse) each phenomenon's runs into the store at root; write verdicts.json; return it.

    `seconds` in verdicts.json is the wall time of the whole phenomenon (specs, training, verdict) for all
    its seeds when every run was trained by this build (`seconds_per_seed` divides it by the seeds); when
    some were reused it keeps the earlier value. `fresh` deletes the phenomenon's stored runs first, so
    all are retrained and timed.
    """
    import torch

    from . import phenomena
    from .phenomena.runner import all_specs, run_phenomenon
    from .store import RunStore

    store = RunStore(root)
    path = root / "verdicts.json"
    verdicts = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        ph = phenomena.get(name)
        by_seed = all_specs(name, size, seeds=seeds)
        specs = [s for grid in by_seed.values() for s in grid]
        if fresh:
            for spec in specs:
                if store.has(spec.key()):
                    store.delete(spec.key())
        reused = sum(store.has(spec.key()) for spec in specs)
        started = time.perf_counter()
        result = run_phenomenon(name, size, store=store, specs=by_seed)
        if not getattr(ph, "needs_weights", False):
            for run in result.runs:
                if run.weights is not None:
                    run.weights = None
                    store.delete(run.key)
                    store.put(run, tags=[f"phenomenon:{name}", f"size:{size}"])
        entry = result.to_json_dict()
        seconds = round(time.perf_counter() - started, 2)
        previous = verdicts.get(name, {})
        if reused and "seconds" in previous:
            entry["seconds"], entry["threads"] = previous["seconds"], previous.get("threads")
        else:
            entry["seconds"], entry["threads"] = seconds, torch.get_num_threads()
        entry["seconds_per_seed"] = round(entry["seconds"] / len(by_seed), 2)
        verdicts[name] = entry
        path.write_text(json.dumps(verdicts, indent=1, sort_keys=True))
        log(f"{name:28s} {result.verdict.summary()}  [{seconds:.1f} s now, {reused} of {len(result.runs)} runs "
            f"reused; recorded {entry['seconds']} s]")
    # phenomenon runs of earlier grids that no verdict reads any more (other runs in the folder stay)
    kept = {k for v in verdicts.values() for s in v.get("seeds", []) for k in s.get("keys", [])}
    kept |= {r["key"] for v in verdicts.values() for r in v["runs"]}
    listing = store.list()
    stale = [k for k, tags in zip(listing["key"], listing["tags"], strict=True)
             if k not in kept and "phenomenon:" in str(tags)]
    for key in stale:
        store.delete(key)
    if stale:
        log(f"removed {len(stale)} runs no verdict uses")
    return verdicts


SHOWCASE_TAG = "showcase:spectra"  # the one gallery run the app's Spectra page opens on


def showcase_spec():
    """`gallery showcase`: Explore's default run (digits, tanh MLP 64-128-128-10, GD eta 0.2, 500 steps: the edge
    of stability) with every spectrum recorded: sharpness every 10 steps, the top-5 Hessian eigenvalues every 50,
    the Hessian spectral density and the weight ESDs every 100, and its final weights (for landscape slices)."""
    from .config import OptimSpec, ProbeSpec, RunSpec

    return RunSpec(optim=OptimSpec(lr=0.2, steps=500),
                   probes=ProbeSpec(sharpness_every=10, topk_every=50, density_every=100, esd_every=100))


def train_showcase(root: Path, log=print) -> str:
    """Train the showcase run into the gallery at root (kept by `gallery build`'s pruning); returns its key."""
    from .store import RunStore
    from .train import train

    store = RunStore(root)
    spec = showcase_spec()
    if not store.has(spec.key()):
        started = time.perf_counter()
        run = train(spec)
        store.put(run, tags=[SHOWCASE_TAG])
        log(f"showcase run {spec.key()} trained in {time.perf_counter() - started:.1f} s ({run.status})")
    return spec.key()


CARD_WIDTH, CARD_HEIGHT = 290, 190  # pixels of a card image (about 1:1 in the 3-column home page at 1440 px)


def seed_keys(entry: dict) -> list[str]:
    """The run keys of the first seed of a verdicts.json entry (what its card image is drawn from)."""
    seeds = entry.get("seeds") or []
    if seeds and seeds[0].get("keys"):
        return list(seeds[0]["keys"])
    return [r["key"] for r in entry["runs"]]


def write_thumbnails(root: Path, names: list[str] | None = None, log=print) -> dict:
    """Draw the card image of each phenomenon in root/verdicts.json from its stored runs; return the index.

    The index (root/cards/index.json) maps a phenomenon to the run keys its image was drawn from, the
    image's size, the readability problems found at that size, and the phenomenon's title and direction
    (so the home page lists the gallery without importing every phenomenon); the app shows an image only
    while those keys are the ones verdicts.json lists. Nothing is trained: a phenomenon whose runs are not all
    stored is skipped.
    """
    from . import phenomena
    from .plots import render
    from .plots.runs import thumbnail
    from .plots.style import log_ticks
    from .store import RunStore

    reason = render.available()
    if reason:
        log(f"card images not drawn: {reason}")
        return {}
    verdicts = json.loads((root / "verdicts.json").read_text()) if (root / "verdicts.json").exists() else {}
    store = RunStore(root, readonly=True)
    folder = root / "cards"
    folder.mkdir(exist_ok=True)
    path = folder / "index.json"
    index = json.loads(path.read_text()) if path.exists() else {}
    index = {n: v for n, v in index.items() if n in verdicts}  # images of phenomena no longer built go
    for stale in folder.glob("*.svg"):
        if stale.stem not in verdicts:
            stale.unlink()
    with render.Renderer() as renderer:
        for name in names if names is not None else list(verdicts):
            if name not in verdicts:
                continue
            keys = seed_keys(verdicts[name])
            runs = [store.get(k) for k in keys]
            if any(r is None for r in runs):
                log(f"{name:28s} card image skipped: {sum(r is None for r in runs)} of its runs are not stored")
                continue
            ph = phenomena.get(name)
            figs = ph.figures(runs, ph.verdict(runs), normalised=True, presentation=False)
            if not figs:
                continue
            card = renderer.freeze_ranges(thumbnail(figs[0], height=CARD_HEIGHT), CARD_WIDTH, CARD_HEIGHT)
            card = renderer.place_annotations(log_ticks(card, small=True), CARD_WIDTH, CARD_HEIGHT, drop=True)
            (folder / f"{name}.svg").write_text(renderer.svg(card, CARD_WIDTH, CARD_HEIGHT))
            problems = renderer.problems(card, CARD_WIDTH, CARD_HEIGHT)
            index[name] = {"runs": keys, "width": CARD_WIDTH, "height": CARD_HEIGHT, "problems": problems,
                           "title": ph.title, "direction": ph.direction}
            log(f"{name:28s} card image drawn" + (f"; {len(problems)} readability problems: " + "; ".join(problems)
                                                  if problems else ""))
            path.write_text(json.dumps(index, indent=1, sort_keys=True))
    return index


def phenomena_markdown(verdicts: dict) -> str:
    """docs/phenomena.md: per phenomenon the claim, its source sentence, each clause with its criterion and
    measured number, the seeds, and what we tried that did not reproduce."""
    from . import phenomena
    from .phenomena.base import DIRECTIONS

    lines = ["# The phenomena catalogue", "",
             "Generated by `python -m learnmech_core gallery build` from the shipped gallery (`quick` size, "
             "2-core CPU, seeds 0, 1 and 2). A prediction holds when every clause of its claim holds together on "
             "at least 2 of 3 seeds, each clause judged by the criterion written in its module before the runs. "
             "`seconds` is the wall time per seed when the runs were last trained, with `threads` torch threads. "
             "A failed prediction is shown as failed.", "",
             "| phenomenon | direction | headline (median over seeds) | criterion | seeds holding | verdict "
             "| runs per seed "
             "| seconds per seed | threads |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda x: "n/a" if x is None else f"{x:.4g}"  # noqa: E731
    for ph in phenomena.all_phenomena():
        v = verdicts.get(ph.name)
        if v is None:
            lines.append(f"| [{ph.name}](#{ph.name}) | {ph.direction} | not built | | | | | | |")
            continue
        word = "holds" if v["passed"] else "fails"
        seeds = v.get("seeds") or []
        held = f"{sum(bool(s['passed']) for s in seeds)} of {len(seeds)}" if seeds else ""
        per_seed = len(v["runs"]) // max(len(seeds), 1)
        lines.append(f"| [{ph.name}](#{ph.name}) | {ph.direction} | {fmt(v['measured'])} | "
                     f"{v.get('criterion', '')} | {held} | {word} | {per_seed} | "
                     f"{v.get('seconds_per_seed', v['seconds'])} | {v.get('threads') or ''} |")
    for ph in phenomena.all_phenomena():
        v = verdicts.get(ph.name)
        lines += ["", f"## {ph.name}", "", f"**{ph.title}** ({DIRECTIONS[ph.direction]})", "",
                  f"- Claim: {ph.prediction}", f"- Sources: {'; '.join(ph.sources)}"]
        if ph.source is not None:
            lines.append(f"- The sentence tested ({ph.source.citation}): \u201c{ph.source.quote}\u201d")
        lines += [f"- What we measure: {ph.measures}",
                  f"- Default grid: architectures {', '.join(ph.archs)}; datasets {', '.join(ph.datasets)}",
                  "- Your own uploaded data: " + (f"{' or '.join(ph.upload_tasks)} data, in the app's Phenomena page"
                                                  if ph.upload_tasks else "not used (the prediction needs its own "
                                                                          "dataset)")]
        if v is not None:
            lines.append(f"- Verdict at quick size: **{'holds' if v['passed'] else 'fails'}**; seeds: " + ", ".join(
                f"{s['seed']} {'holds' if s['passed'] else 'fails'} ({fmt(s['measured'])})"
                for s in v.get("seeds", [])))
            seeds = v.get("seeds", [])
            for i, c in enumerate(v.get("clauses", [])):
                word = {True: "holds", False: "fails", None: "not tested at quick" +
                        (f" ({c['needs']})" if c.get("needs") else "")}[c["passed"]]
                judged = [s["clauses"][i] for s in seeds if i < len(s.get("clauses", []))]
                if len(judged) > 1 and c["passed"] is not None:  # a clause's word is a majority over seeds
                    word += f" on {sum(j is True for j in judged)} of {len(judged)} seeds"
                lines.append(f"  - {c['claim']}: {c['quantity']} = {fmt(c['measured'])} (predicted: "
                             f"{c['criterion']}): {word}" + (f"; {c['note']}" if c.get("note") else ""))
            lines.append(f"- {v['explanation']}")
        if ph.tried:
            lines.append("- What we tried that did not reproduce the claim:")
            lines += [f"  - {t.setup}: {t.outcome}" + (f" (seeds {t.seeds})" if t.seeds else "") for t in ph.tried]
    return "\n".join(lines) + "\n"


def cmd_gallery(args) -> int:
    from . import phenomena
    from .store import gallery_root

    names = args.only.split(",") if args.only else phenomena.names()
    for n in names:
        try:
            phenomena.get(n)
        except ValueError as err:
            raise UsageError(str(err)) from None
    root = Path(args.root) if args.root else gallery_root()
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    if args.action == "showcase":
        print(json.dumps({"showcase": train_showcase(root, log=log)}))
        return 0
    if args.action == "thumbnails":
        index = write_thumbnails(root, names if args.only else None, log=log)
        print(json.dumps({n: {"problems": len(v["problems"])} for n, v in index.items()}))
        return 0
    from .cli_phenomena import parse_seeds

    verdicts = build_gallery(root, names, args.size, log=log, fresh=args.fresh, seeds=parse_seeds(args.seeds))
    write_thumbnails(root, names, log=log)
    if not args.root:
        DOCS.parent.mkdir(exist_ok=True)
        DOCS.write_text(phenomena_markdown(verdicts))
    print(json.dumps({n: {"passed": v["passed"], "measured": v["measured"]} for n, v in verdicts.items()}))
    return 0


def register(commands: dict) -> None:
    def gallery_args(p):
        p.add_argument("action", choices=("build", "thumbnails", "showcase"),
                       help="build (train what is missing, then draw the card images), thumbnails (redraw the home "
                            "page's card images from the stored runs, training nothing) or showcase (train the run "
                            "with Hessian and weight spectra that the Spectra page opens on)")
        help_when_shown(p.add_argument("--only", help="comma-separated phenomena (default: all)"),
                        lambda: f"comma-separated phenomena from {phenomenon_names()} (default: all)")
        p.add_argument("--size", default="quick", choices=SIZES, help="run grid size (default quick)")
        p.add_argument("--root", help="write to this folder instead of the shipped gallery (docs are then left alone); "
                       "phenomenon runs there that no verdict reads are removed, other runs are kept")
        p.add_argument("--seeds", default="0,1,2", help="replicates of each phenomenon's grid (default 0,1,2)")
        p.add_argument("--fresh", action="store_true",
                       help="retrain (and time) every run instead of reusing the stored ones")

    commands["gallery"] = (gallery_args, cmd_gallery, "precompute the phenomena gallery (learnmech_core/gallery)")
