"""The coordinate check of the muP page, cached by its settings (a few seconds of training per setting)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from learnmech_core.config import RunSpec
from learnmech_core.coord_check import coord_check


@st.cache_data(show_spinner=False, max_entries=16)
def table(spec_json: str, widths: tuple[int, ...], seeds: int, steps: int) -> pd.DataFrame:
    """`coord_check.coord_check` of the spec (as canonical JSON) at these widths, SP and muP, seeds 0..seeds-1."""
    return coord_check(RunSpec.from_json(spec_json), widths, params=("sp", "mup"), seeds=tuple(range(seeds)),
                       steps=steps)
