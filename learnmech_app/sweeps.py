"""Sets of runs for the Sweeps page and their hparams tables (cached by the runs' keys).

A set is the user's own stored runs or the runs sharing a tag (a phenomenon's runs, a CLI sweep's
`--tag`); the page narrows it with filters. The table is `learnmech_core.hparams.hparams_table` of the
runs, read from the store or the gallery.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from learnmech_core.hparams import hparams_table

from . import resources

STORE = "store"
MAX_RUNS = 300  # more runs than this are cut to the newest (reading each run's history costs a few ms)


def groups(index: pd.DataFrame) -> dict[str, str]:
    """Set name -> label: the store's runs, then each tag with two or more runs (most runs first)."""
    out = {}
    mine = int((index["source"] == STORE).sum()) if "source" in index else 0
    if mine >= 2:
        out[STORE] = f"your runs ({mine})"
    tags = index["tags"].fillna("").str.split(",").explode()
    counts = tags[(tags != "") & ~tags.str.startswith("size:")].value_counts()
    for tag, n in counts.items():
        if n >= 2:
            kind, _, name = tag.partition(":")
            out[tag] = f"{kind}: {name} ({n} runs)" if name else f"tag {tag} ({n} runs)"
    return out


def members(index: pd.DataFrame, group: str) -> pd.DataFrame:
    """Index rows of one set (newest first)."""
    if group == STORE:
        return index[index["source"] == STORE]
    return index[index["tags"].fillna("").str.split(",").apply(lambda ts: group in ts)]


@st.cache_data(show_spinner=False, max_entries=16)
def table(keys: tuple[str, ...]) -> pd.DataFrame:
    """The hparams table of these runs (unreadable runs left out)."""
    runs = [r for r in (resources.load_run(k)[0] for k in keys) if r is not None]
    if len(runs) < 2:
        raise ValueError("fewer than two of these runs could be read")
    return hparams_table(runs)
