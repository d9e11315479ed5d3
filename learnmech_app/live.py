"""Drawing live jobs: a fragment polls the session's job and redraws progress and charts.

Streamlit is called only from the script thread: the worker writes into the `Job`, and the fragment
(`st.fragment(run_every=POLL_S)`) reads `job.snapshot()` and draws. Only the fragment reruns while a
job trains, so the rest of the page stays usable. When the job finishes, the fragment asks for one
full rerun so the page shows the final state without polling any more.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd
import streamlit as st

from learnmech_core.plots import runs as prun

from . import resources, ui
from .jobs import Job

POLL_S = 0.75
STATUS_WORDS = {"pending": "waiting", "queued": "in the queue", "running": "training", "stored": "read from store",
                "ok": "finished", "diverged": "diverged", "stopped": "stopped", "failed": "failed"}


def session_job(name: str) -> Job | None:
    return st.session_state.get(f"job:{name}")


def start_job(name: str, specs, tags=None) -> Job:
    """Start training specs in a worker thread owned by this session (replacing a finished job)."""
    old = session_job(name)
    if old is not None and not old.done:
        return old
    job = Job(specs, resources.store(), resources.limiter(), sources=[resources.gallery()], tags=tags).start()
    st.session_state[f"job:{name}"] = job
    return job


def show_job(name: str, render: Callable[[Job], None]) -> None:
    """Draw a job: polled while it trains, once when finished."""
    job = session_job(name)
    if job is None:
        return
    if job.done:
        render(job)
    else:
        _poll(name, render)


@st.fragment(run_every=POLL_S)
def _poll(name: str, render: Callable[[Job], None]) -> None:
    job = session_job(name)
    if job is None:
        return
    job.heartbeat()
    render(job)
    if job.done:
        st.rerun(scope="app")


def progress(job: Job, stop_key: str) -> None:
    """Progress bar with a time estimate, the queue place when waiting, and a Stop button."""
    fraction, text = job.progress()
    cols = st.columns([6, 1])
    cols[0].progress(fraction, text=text)
    if not job.done:
        if cols[1].button("Stop", key=stop_key, icon=":material/stop_circle:", disabled=job.stopping,
                          help="Stop training; what has been measured so far stays on the charts (not stored)."):
            job.stop()
            st.toast("Stopping after the current step")
    if job.error:
        ui.error(job.error)


def state_table(job: Job) -> pd.DataFrame:
    states = job.snapshot()
    labels = prun.run_labels([s.as_run() for s in states])
    rows = []
    for s, label in zip(states, labels):
        rows.append({"run": label, "key": s.key, "state": STATUS_WORDS.get(s.state, s.state),
                     "step": f"{s.step} / {s.total}" if s.state != "stored" else f"{s.total} / {s.total}",
                     "message": s.message})
    return pd.DataFrame(rows)


def runs_of(job: Job) -> list:
    """Finished runs and partial ones (history so far) for charts; queued runs without rows left out."""
    out = []
    for s in job.snapshot():
        run = s.as_run()
        if len(run.history):
            out.append(run)
    return out


def training_charts(runs: list, key: str, x: str = "step", smoothing: float = 0.0, extra: list[str] = (),
                    presentation: bool = False, sharpness_normalised: bool = False) -> None:
    """Loss, accuracy, sharpness with 2/eta (when recorded) and the extra metrics, two to a row."""
    if not runs:
        st.info("Waiting for the first measurement ...", icon=":material/hourglass_top:")
        return
    available = prun.metric_columns(runs)
    figures = [("loss", prun.curves_figure(runs, "loss", x, smoothing=smoothing, presentation=presentation))]
    acc = "test_acc" if "test_acc" in available else ("train_acc" if "train_acc" in available else None)
    if acc:
        figures.append(("acc", prun.curves_figure(runs, acc, x, smoothing=smoothing, presentation=presentation,
                                                 log_y=False)))
    elif "test_loss" in available:
        figures.append(("test_loss", prun.curves_figure(runs, "test_loss", x, smoothing=smoothing,
                                                       presentation=presentation)))
    if "sharpness" in available:
        figures.append(("sharpness", prun.sharpness_figure(runs, x, normalised=sharpness_normalised,
                                                           presentation=presentation)))
    for metric in extra:
        if metric in available and metric not in ("loss", acc, "sharpness"):
            figures.append((metric, prun.curves_figure(runs, metric, x, smoothing=smoothing, presentation=presentation)))
    per_row = 1 if presentation else 2
    for i in range(0, len(figures), per_row):
        cols = st.columns(per_row)
        for col, (name, fig) in zip(cols, figures[i:i + per_row]):
            with col:
                ui.show_figure(fig, key=f"{key}_{name}", name=f"{key}_{name}")
