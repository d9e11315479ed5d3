"""Streamlit helpers of the learnmech explorer: jobs, caches, the shared sidebar, widgets, downloads.

UI only. The science lives in `learnmech_core` (which never imports this package); the figures come
from `learnmech_core.plots`. `jobs` is plain Python (worker threads and the training queue) so it can
be tested without Streamlit.
"""
