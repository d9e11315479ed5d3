"""The sidebar every page shares: presentation mode, device, store, profile, and the training queue.

app.py draws it after a page that imports nothing heavy (the home page) and before every other page: its
device line and queue need torch and the training pool, which a fresh server loads only then.
"""

from __future__ import annotations

import streamlit as st

from . import resources, ui


def render() -> bool:
    """Draw the shared sidebar; returns whether presentation mode is on."""
    with st.sidebar:
        present = st.toggle("Presentation mode", key=ui.PRESENT_KEY, bind="query-params",
                            help="Larger fonts and lines for projectors; controls start collapsed.")
        st.caption(f":material/memory: **Device:** {resources.device_in_use()}")
        st.caption(f":material/database: **Store:** `{resources.store_location()}`")
        gallery = ("present" if resources.gallery_present()
                   else "not built yet (`python -m learnmech_core gallery build`)")
        st.caption(f":material/photo_library: **Gallery:** {gallery}")
        st.caption(f":material/cloud: **Profile:** {resources.profile_text()}")
        _queue()
    if present:
        ui.presentation_css()
    return bool(present)


def _queue() -> None:
    from .live import session_job

    active = [j for j in (session_job("explore"), session_job("phenomena")) if j is not None and not j.done]
    if active:
        _queue_live()
    else:
        _queue_body()


@st.fragment(run_every=2.0)
def _queue_live() -> None:
    _queue_body()


def _queue_body() -> None:
    from .live import session_job

    pool = resources.pool()
    running, waiting = pool.load()
    slots = pool.slots
    line = f":material/model_training: **Training now:** {running} of {slots} slots"
    if waiting:
        line += f", {waiting} waiting"
    st.caption(line)
    for name in ("explore", "phenomena"):
        job = session_job(name)
        if job is not None and not job.done:
            job.heartbeat()
            fraction, text = job.progress()
            st.progress(fraction, text=f"{name.capitalize()}: {text}")
