"""Steering a live run: pause it, give it a new learning rate, resume (a teacher pushing η past 2/λ).

The change reaches the worker between two steps; the run's history records the rate of every step
(`lr`), its spec records the change (`optim.lr_changes`, so the stored run and its link replay it), and
the charts mark it with a dotted line. A run shared with other visitors (same settings, trained once)
is theirs too, so it cannot be steered: the message says so.
"""

from __future__ import annotations

import math

import streamlit as st

from .jobs import Job


def current_lr(state) -> float:
    """The learning rate of the run's latest step (its spec's rate before the first row)."""
    for row in reversed(state.rows):
        if "lr" in row:
            return float(row["lr"])
    return float(state.spec.optim.lr)


def latest(state, column: str) -> float:
    for row in reversed(state.rows):
        value = row.get(column)
        if value is not None and value == value:
            return float(value)
    return float("nan")


def controls(job: Job, key: str) -> None:
    """Pause / resume, a new η and Apply, for the run of this job that is training now."""
    state = next((s for s in job.snapshot() if s.state == "running"), None)
    if job.done or state is None or not state.rows:
        return
    lr = current_lr(state)
    with st.container(horizontal=True, vertical_alignment="bottom", key=f"{key}_steer"):
        if state.paused:
            pressed = st.button("Resume", key=f"{key}_resume", icon=":material/play_arrow:", type="primary")
        else:
            pressed = st.button("Pause", key=f"{key}_pause", icon=":material/pause:")
        new_lr = st.number_input("New learning rate η", min_value=1e-6, max_value=1e4, value=lr, format="%g",
                                 step=lr / 2 if lr > 0 else 0.01, key=f"{key}_lr", width=180)
        apply = st.button("Apply η", key=f"{key}_apply", icon=":material/speed:",
                          help="The new rate is used from the next step; the charts mark the change.")
    try:
        if pressed:
            job.pause(not state.paused)
        if apply and new_lr and not math.isclose(new_lr, lr):
            job.set_lr(new_lr)
            st.toast(f"η → {new_lr:g} from the next step")
    except ValueError as err:
        st.warning(str(err), icon=":material/lock:")
    sharpness = latest(state, "sharpness")
    if state.spec.optim.name in ("gd", "sgd") and sharpness == sharpness and sharpness > 0:
        st.caption(f"Now η = {lr:g}, so 2/η = {2 / lr:.3g}; the last measured sharpness λ = {sharpness:.3g}. "
                   f"η above 2/λ = {2 / sharpness:.3g} makes gradient descent unstable along the top direction: "
                   "watch the loss spike (a catapult) and the sharpness fall back to 2/η (edge of stability).")
