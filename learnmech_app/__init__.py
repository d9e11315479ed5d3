"""Streamlit helpers of the learnmech explorer: jobs, caches, the shared sidebar, widgets, downloads.

UI only. The science lives in `learnmech_core` (which never imports this package); the figures come
from `learnmech_core.plots`. `jobs`, `pool`, `worker` and `quota` are plain Python (a session's runs,
the shared training queue and its worker processes, the CPU quota), tested without Streamlit; `worker`
is what the training processes import, so it must never import Streamlit.
"""
