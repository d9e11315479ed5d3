"""The sidebar every page shares: presentation mode, device, store, profile, and the training queue.

Its device line and queue need torch and the training pool, which a fresh server loads only when a page
needs them (`resources.configure_process`). The home page does not: there app.py draws the sidebar after
the page, and on a fresh server `render_then_configure` leaves the loading to a moment later.
"""

from __future__ import annotations

import streamlit as st

from . import resources, ui

CONFIGURE_AFTER_S = 1.0  # on a fresh server's home page: how long the browser has to draw it before torch loads
_WAITING = "sidebar:configure-on-timer"


def render() -> bool:
    """Draw the shared sidebar (the process configured, or under AppTest); returns whether presentation mode is on."""
    with st.sidebar:
        present = _presentation_toggle()
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


def render_then_configure() -> bool:
    """On a page that needs nothing heavy, while the process is not configured yet: presentation mode now, and a
    fragment whose timer, `CONFIGURE_AFTER_S` later, configures the process and reruns the app (which then draws
    the whole sidebar). Loading torch in the same run, right after the page, held back the page's messages and the
    browser's scripts (the GIL, 2 cores): a fresh server's first home visit took 0.1-0.2 s longer (benchmarks/app)."""
    with st.sidebar:
        present = _presentation_toggle()
        st.session_state[_WAITING] = True
        st.fragment(_configure_then_rerun, run_every=CONFIGURE_AFTER_S)()
    if present:
        ui.presentation_css()
    return bool(present)


def _configure_then_rerun() -> None:
    if st.session_state.pop(_WAITING, False):  # drawn with the page: the timer's run does the work
        st.caption(":material/hourglass_top: Loading the device and the training queue ...")
        return
    resources.configure_process()
    st.rerun()


def _presentation_toggle() -> bool:
    return st.toggle("Presentation mode", key=ui.PRESENT_KEY, bind="query-params",
                     help="Larger fonts and lines for projectors; controls start collapsed.")


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
