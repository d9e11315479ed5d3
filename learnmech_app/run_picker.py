"""The run picker of the analysis pages (Spectra, Compare): stored runs by a readable label, the key in the URL.

Both pages list the same index (`resources.run_index()`: the store's runs, then the gallery's) with the same
label, so a run reads the same everywhere and a link names it by its key (`?run=KEY`, `?runs=KEY&runs=KEY`).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from learnmech_core.cli_gallery import SHOWCASE_TAG  # the gallery run the Spectra page opens on

from . import resources
from .urlstate import choice


def labels(index: pd.DataFrame) -> dict[str, str]:
    """key -> 'mlp · digits · gd η=0.2 w=128 seed=0 · ok · 1a2b3c4d (gallery)'."""
    return {r.key: f"{r.arch} · {r.dataset} · {r.optimizer} η={r.lr:g} w={r.width} seed={r.seed} · {r.status} · "
                   f"{r.key[:8]} ({r.source})" for r in index.itertuples()}


def pick_one(index: pd.DataFrame, label: str = "Run", key: str = "run", default: str | None = None) -> str | None:
    """One run (a selectbox); the URL's `key` wins, then `default`, then the first row."""
    names = labels(index)
    return choice(st.selectbox, label, list(names), key=key, default=default, format_func=names.get)


def pick_many(index: pd.DataFrame, shown: pd.DataFrame, label: str = "Runs", key: str = "runs",
              placeholder: str = "choose runs") -> list[str]:
    """Several runs (a multiselect over `shown`, a filtered part of `index`); runs named by a link stay choosable."""
    names = labels(index)
    linked = list(st.session_state.get(key) or st.query_params.get_all(key))
    options = list(dict.fromkeys(list(shown["key"]) + [k for k in linked if k in names]))
    return list(choice(st.multiselect, label, options, key=key, format_func=lambda k: names.get(k, k),
                       placeholder=placeholder) or [])


def with_hessian_spectra(index: pd.DataFrame, look_at: int = 20) -> str | None:
    """A run to open the Spectra page on: the newest of your own runs (up to `look_at`) that recorded Hessian
    spectra, else the gallery's showcase run, else None."""
    mine = index[index["source"] == "store"].head(look_at)
    for key in mine["key"]:
        if _has_hessian_spectra(key):
            return key
    tags = index["tags"].fillna("").astype(str)
    showcase = index[tags.str.contains(SHOWCASE_TAG, regex=False)]
    return str(showcase["key"].iloc[0]) if len(showcase) else None


@st.cache_data(show_spinner=False, max_entries=512)
def _has_hessian_spectra(key: str) -> bool:
    """Whether a stored run recorded Hessian spectra (a run's key fixes its content, so the answer is kept:
    the Spectra page asks on every rerun, and reading a whole run to answer costs far more)."""
    run, _ = resources.load_run(key)
    if run is None or not len(run.spectra):
        return False
    return bool(run.spectra["kind"].astype(str).str.startswith("hessian").any())
