"""Drawing live jobs: a fragment polls the session's job and redraws progress and charts.

Streamlit is called only from the script thread: the pool's workers train and the job collects their
progress; the fragment (`st.fragment(run_every=...)`) reads `job.snapshot()` and draws. Only the
fragment reruns while a job trains, so the rest of the page stays usable. When the job finishes, the
fragment asks for one full rerun so the page shows the final state without polling any more.

A job waiting in the queue polls every `QUEUED_POLL_S` (its queue place changes slowly); once one of
its runs trains, every `POLL_S`. Each poll of each visitor costs the one server process a script run,
so with a class of visitors the polling is what the server spends its time on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

from learnmech_core import boundary as bd
from learnmech_core.data import describe, load
from learnmech_core.plots import runs as prun
from learnmech_core.plots.boundary import boundary_figure

from . import resources, ui
from .jobs import Job

POLL_S = 0.75
QUEUED_POLL_S = 2.0
TWO_D = ("moons", "circles", "spirals", "gaussian_mixture")  # datasets the data-noise control applies to
STATUS_WORDS = {"pending": "waiting", "queued": "in the queue", "running": "training", "stored": "read from store",
                "ok": "finished", "diverged": "diverged", "stopped": "stopped", "failed": "failed"}


def session_job(name: str) -> Job | None:
    return st.session_state.get(f"job:{name}")


def start_job(name: str, specs, tags=None) -> Job:
    """Start training specs (in the shared pool) for this session, replacing a finished job."""
    old = session_job(name)
    if old is not None and not old.done:
        return old
    boundary = any(_two_d(s) for s in specs)
    job = Job(specs, resources.store(), resources.pool(), sources=[resources.gallery()], tags=tags,
              boundary=boundary, refuse=resources.refuse).start()
    st.session_state[f"job:{name}"] = job
    return job


def _two_d(spec) -> bool:
    try:
        return bd.supports(describe(spec.data))
    except ValueError:
        return False


def show_job(name: str, render: Callable[[Job], None]) -> None:
    """Draw a job: polled while it trains, once when finished."""
    job = session_job(name)
    if job is None:
        return
    if job.done:
        render(job)
        return
    waiting = all(s.state in ("pending", "queued") for s in job.snapshot() if not s.finished)
    st.fragment(_poll, run_every=QUEUED_POLL_S if waiting else POLL_S)(name, render, waiting)


def _poll(name: str, render: Callable[[Job], None], waiting: bool) -> None:
    job = session_job(name)
    if job is None:
        return
    job.heartbeat()
    render(job)
    if job.done:
        st.rerun(scope="app")
    elif waiting and any(s.state == "running" for s in job.snapshot()):
        st.rerun(scope="app")  # out of the queue: poll at the training pace from now on


def progress(job: Job, stop_key: str) -> None:
    """Progress bar with a time estimate, the queue place when waiting, and a Stop button."""
    fraction, text = job.progress()
    cols = st.columns([6, 1])
    cols[0].progress(fraction, text=text)
    if not job.done and cols[1].button("Stop", key=stop_key, icon=":material/stop_circle:", disabled=job.stopping,
                                       help="Stop training; what has been measured so far stays on the charts "
                                            "(not stored)."):
        job.stop()
        st.toast("Stopped: the curves so far stay on the charts")
    if job.error:
        ui.error(job.error)
    for s in job.snapshot():
        if s.state == "failed" and s.message.startswith("not trained"):
            ui.error(s.message)


def state_table(job: Job) -> pd.DataFrame:
    states = job.snapshot()
    labels = prun.run_labels([s.as_run() for s in states])
    rows = []
    for s, label in zip(states, labels, strict=True):
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
                    presentation: bool = False, sharpness_normalised: bool = False, boundary=None) -> None:
    """Loss, accuracy, sharpness with 2/eta (when recorded), the decision boundary (2-D data) and the extra
    metrics, two to a row."""
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
    if boundary is not None:
        figures.append(("boundary", boundary))
    for metric in extra:
        if metric in available and metric not in ("loss", acc, "sharpness"):
            figures.append((metric, prun.curves_figure(runs, metric, x, smoothing=smoothing,
                                                       presentation=presentation)))
    per_row = 1 if presentation else 2
    for i in range(0, len(figures), per_row):
        cols = st.columns(per_row)
        for col, (name, fig) in zip(cols, figures[i:i + per_row], strict=False):
            with col:
                ui.show_figure(fig, key=f"{key}_{name}", name=f"{key}_{name}")


# --- decision boundary (2-D datasets) -------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _points(data_repr: str, _spec) -> tuple[np.ndarray, np.ndarray]:
    data = load(_spec.data)
    return data.x_train.numpy(), data.y_train.numpy()


@st.cache_data(show_spinner=False, max_entries=64)
def _final_boundary(key: str, _run):
    return bd.from_run(_run)


def with_data_noise(specs: list, noise: float, flat: bool) -> tuple[list, list[str]]:
    """The specs with the data-noise control applied to the 2-D datasets (and Gaussian mixtures put in the
    plane when `flat`); messages for any that cannot be built."""
    out, problems = [], []
    for spec in specs:
        changes = {}
        if spec.data.name in TWO_D:
            changes["data.noise"] = float(noise)
        if flat and spec.data.name == "gaussian_mixture":
            changes.update({"data.dim": 2, "data.singular_values": spec.data.singular_values[:2]})
        try:
            out.append(spec.replace(**changes) if changes else spec)
        except ValueError as err:
            problems.append(f"Data: {err}")
    return out, problems


def _figure(grid, spec, presentation: bool):
    x, y = _points(repr(spec.data), spec)
    return boundary_figure(grid, x, y, presentation=presentation)


def finished_boundary(runs: list, presentation: bool = False):
    """The decision-boundary figure of the last finished 2-D run (from its final weights), or None."""
    for run in reversed(runs):
        if run.status != "stopped" and _two_d(run.spec):
            grid = _final_boundary(run.spec.key(), run)
            if grid is not None:
                return _figure(grid, run.spec, presentation)
    return None


def boundary_of(job: Job, presentation: bool = False):
    """The decision-boundary figure of the job's 2-D run training now (its latest grid), else of its last
    finished 2-D run; None when the job has no 2-D classification run."""
    states = [s for s in job.snapshot() if _two_d(s.spec)]
    live = next((s for s in states if s.state == "running" and s.grid is not None), None)
    if live is not None:
        return _figure(live.grid, live.spec, presentation)
    figure = finished_boundary([s.run for s in states if s.run is not None], presentation)
    if figure is None:  # stopped: the last live picture
        last = next((s for s in reversed(states) if s.grid is not None), None)
        figure = _figure(last.grid, last.spec, presentation) if last is not None else None
    return figure
