"""learnmech explorer: `streamlit run app.py`.

Entry point: page setup, the shared sidebar, and navigation over the pages in `pages/`. Everything a
page shows comes from the core (`learnmech_core`) and its figure builders (`learnmech_core.plots`).

Order of a script run. The home page (the first page a visitor sees) imports nothing heavy: its cards are
the gallery's files. So it is drawn first, then the sidebar; on a fresh server the sidebar's timer loads
torch, the measurement modules and the training pool (`resources.configure_process`, seconds, once per
process) a moment later, once the browser has drawn the cards. Every other page needs them and may stop
early (`st.stop`): for it the process is configured and the sidebar drawn before the page.
"""

import logging

import streamlit as st
from streamlit.runtime.state.common import TESTING_KEY

from learnmech_app import resources, sidebar  # `streamlit run` puts this file's folder first on sys.path

resources.apply_secrets()  # LEARNMECH_* settings given as secrets (Community Cloud), before the profile is read
PRESENTING = str(st.query_params.get("present", "")).lower() in ("true", "1")
st.set_page_config(page_title="learnmech: learning mechanics explorer", page_icon=":material/insights:",
                   layout="wide", initial_sidebar_state="collapsed" if PRESENTING else "auto")

HOME = st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)
PAGES = {
    "Learning mechanics": [
        HOME,
        st.Page("pages/phenomena.py", title="Phenomena", icon=":material/science:"),
    ],
    "Experiment": [
        st.Page("pages/explore.py", title="Explore", icon=":material/play_circle:"),
        st.Page("pages/your_data.py", title="Your own data", icon=":material/upload_file:"),
        st.Page("pages/your_model.py", title="Your own model", icon=":material/memory:"),
        st.Page("pages/coord_check.py", title="muP coordinate check", icon=":material/straighten:"),
    ],
    "Analyse": [
        st.Page("pages/spectra.py", title="Spectra and landscape", icon=":material/ssid_chart:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/stacked_line_chart:"),
        st.Page("pages/sweeps.py", title="Sweeps", icon=":material/tune:"),
        st.Page("pages/runs.py", title="Runs", icon=":material/table_view:"),
    ],
}


def run(page) -> None:
    try:
        page.run()
    except Exception as err:  # a safety net: a message in the page, the traceback only in the server log
        logging.getLogger("learnmech.app").exception("page %s failed", page.title)
        st.error(f"Unexpected problem on this page ({type(err).__name__}: {err}). Reload the page; if it happens "
                 "again, please report it with this message.", icon=":material/error:")


page = st.navigation(PAGES)
testing = TESTING_KEY in st.session_state  # under AppTest the test process keeps its own torch settings
if page.url_path == HOME.url_path:  # imports nothing heavy and never stops early
    run(page)
    if testing or resources.configured():
        sidebar.render()
    else:
        sidebar.render_then_configure()
else:
    if not testing:
        resources.configure_process()
    sidebar.render()
    run(page)
