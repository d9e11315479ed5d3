"""Home-page cards: each phenomenon's recorded verdict and its card image, read from the gallery at once.

The verdict line comes from the gallery's `verdicts.json` and the image from `cards/NAME.svg`, drawn
by `python -m learnmech_core gallery build` (or `gallery thumbnails`, which redraws them without
training) from the same runs. Nothing is computed when the page is served: the files are read once per
gallery version and shared by all sessions. An image is shown only while the runs it was drawn from
are the runs the verdict lists; otherwise the card says how to redraw it. The interactive figures are on
the phenomenon's own page.

This module is on the path of a fresh server's first page, so it imports nothing from `learnmech_core`:
importing any of it imports the package, and with it torch (1-3 s on a busy 2-core machine). The gallery
folder and the research directions are therefore found here without it (tests check they agree with
`learnmech_core.store.gallery_root` and `learnmech_core.phenomena.DIRECTIONS`).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from . import ui

REDRAW = "python -m learnmech_core gallery thumbnails"

# The five research directions of learning mechanics, in catalogue order: (title, one sentence). The titles
# are `learnmech_core.phenomena.DIRECTIONS` (tests/test_app.py checks they stay the same).
DIRECTIONS = {
    "solvable": ("Solvable idealised settings",
                 "Settings simple enough to solve exactly (deep linear networks, kernels, modular arithmetic), "
                 "where theory predicts whole learning curves."),
    "limits": ("Tractable limits",
               "Infinite width, depth or data: limits such as the neural tangent kernel and mean field in which "
               "training becomes tractable, and where real networks sit between them."),
    "laws": ("Simple macroscopic laws",
             "Macroscopic regularities (scaling laws, conservation laws) that hold whatever the microscopic details."),
    "hyperparameters": ("Hyperparameter theories",
                        "Theories that say how to set learning rate, batch size and width, and how settings transfer "
                        "from small models to large ones."),
    "universal": ("Universal behaviours",
                  "Behaviours seen across architectures and datasets: the edge of stability, heavy-tailed spectra, "
                  "Hessian outliers, neural collapse."),
}


def gallery_root() -> Path:
    """The shipped gallery folder, as `learnmech_core.store.gallery_root` finds it (LEARNMECH_GALLERY, else
    the package's `gallery` folder), located without importing the package."""
    if os.environ.get("LEARNMECH_GALLERY"):
        return Path(os.environ["LEARNMECH_GALLERY"]).expanduser()
    spec = importlib.util.find_spec("learnmech_core")  # a top-level package: found, not executed
    return Path(next(iter(spec.submodule_search_locations))) / "gallery"


@dataclass(frozen=True)
class Card:
    state: str  # "ok" (a recorded verdict), "absent" (not in the gallery), "error" (unreadable)
    passed: bool | None = None
    summary: str = ""
    image: str | None = None  # the SVG as a data: URI
    note: str = ""  # why there is no image, in words


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return {}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def summary(recorded: dict) -> str:
    """The verdict line of a verdicts.json entry, as the phenomenon page words it (`summary`, recorded by
    `gallery build`), with how many seeds held; an older entry without it gets its number and word."""
    seeds = recorded.get("seeds") or []
    held = f" ({sum(bool(s.get('passed')) for s in seeds)} of {len(seeds)} seeds)" if len(seeds) > 1 else ""
    if recorded.get("summary"):
        return str(recorded["summary"]) + held
    measured = recorded.get("measured")
    number = "n/a" if measured is None or not math.isfinite(float(measured)) else f"{float(measured):.3g}"
    return f"{number}: {'holds' if recorded.get('passed') else 'fails'}" + held


@st.cache_resource(show_spinner=False, max_entries=4)
def _cards(root: str, stamp: tuple) -> dict[str, Card]:
    """Every card of one gallery version (read-only, shared by all sessions)."""
    folder = Path(root)
    verdicts = _read_json(folder / "verdicts.json")
    drawn = _read_json(folder / "cards" / "index.json")
    out = {}
    for name, recorded in verdicts.items():
        try:
            line = summary(recorded)
        except (TypeError, ValueError) as err:
            out[name] = Card("error", note=f"the recorded verdict cannot be read ({err})")
            continue
        image, note = None, f"No card image yet: `{REDRAW}` draws it."
        entry = drawn.get(name, {})
        # the image is drawn from the first seed's runs
        keys = (recorded.get("seeds") or [{}])[0].get("keys") or [r.get("key") for r in recorded.get("runs", [])]
        svg = folder / "cards" / f"{name}.svg"
        if entry and entry.get("runs") == keys and svg.exists():
            image, note = "data:image/svg+xml;base64," + base64.b64encode(svg.read_bytes()).decode(), ""
        elif entry:
            note = f"The card image is older than the gallery's runs: `{REDRAW}` redraws it."
        out[name] = Card("ok", bool(recorded.get("passed")), line, image, note)
    return out


@st.cache_resource(show_spinner=False, max_entries=4)
def _listing(root: str, stamp: float) -> list[tuple[str, str, str]]:
    index = _read_json(Path(root) / "cards" / "index.json")
    return [(name, str(e["title"]), str(e["direction"])) for name, e in index.items()
            if "title" in e and "direction" in e]


def listing() -> list[tuple[str, str, str]]:
    """(name, title, direction) of every phenomenon with a card image, from the gallery's card index (no
    phenomenon module is imported: on a fresh server that saves the home page half a second); empty when the
    gallery has no card images."""
    root = gallery_root()
    return _listing(str(root), _mtime(root / "cards" / "index.json"))


def card(name: str) -> Card:
    """What the home page shows for a phenomenon now."""
    root = gallery_root()
    stamp = (_mtime(root / "verdicts.json"), _mtime(root / "cards" / "index.json"))
    return _cards(str(root), stamp).get(name) or Card("absent")


def show(name: str, title: str) -> None:
    """One card: the phenomenon's question, its image, the verdict line and a link to its page.

    The image is an `<img>` of the SVG's data URI in `st.html` rather than an `st.image`: on a fresh server the
    first `st.image` imports numpy, and the browser fetches the image viewer's code before drawing it."""
    info = card(name)
    st.markdown(f"**{title}**")
    if info.image is not None:
        st.html(f'<img class="card-figure" src="{info.image}" alt="{html.escape(title)}" style="width: 100%">')
    elif info.note:
        st.caption(info.note)
    if info.state == "ok":
        st.markdown(f"{ui.verdict_badge(info.passed)} {info.summary}")
    elif info.state == "absent":
        st.caption("Not in the gallery yet: open it and press **Run**.")
    else:
        st.caption(f"Not available: {info.note}")
    st.page_link("pages/phenomena.py", label="Open", icon=":material/arrow_forward:",
                 query_params={"phenomenon": name})

