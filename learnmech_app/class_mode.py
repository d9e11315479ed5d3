"""Class mode on a phenomenon's page: predict, then reveal.

With class mode on (a toggle bound to `?class=true`), the page asks for a guess of the phenomenon's headline
number before it shows anything measured: a slider in the units the theory speaks in ("where will sharpness
stop, in units of 2/η?"). The class's guesses are added one at a time; *Reveal* then shows them on one number
line beside the measured value (the verdict's `measured`, from the stored runs) and the theory's band, and the
rest of the page (verdict, figures, table) appears. Phenomena whose headline number is no quantity a student
can guess (a fit error, a rank correlation) have no question; for them the page shows as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from learnmech_core.plots.guesses import guesses_figure

from . import ui

KEY = "class"


@dataclass(frozen=True)
class Question:
    """A guess of `verdict.measured`, asked as `text` (markdown with $...$), on a slider from lo to hi."""

    text: str
    unit: str  # the axis title of the number line (plain text: Plotly draws no TeX)
    lo: float
    hi: float
    step: float
    start: float
    log: bool = False  # a slider over powers of ten (ratios spanning decades)


QUESTIONS = {
    "edge_of_stability": Question(
        "Gradient descent with step size $\\eta$ makes the loss's sharpness (its top Hessian eigenvalue) rise. "
        "**Where will the sharpness stop**, in units of $2/\\eta$?", "sharpness / (2/η)", 0.0, 3.0, 0.05, 0.5),
    "adaptive_edge_of_stability": Question(
        "Adam preconditions the gradient. **Where will its preconditioned sharpness stop**, in units of "
        "$38/\\eta$ (Adam's stability threshold for $\\beta_1 = 0.9$)?", "λₘₐₓ(P⁻¹H) / (38/η)", 0.0, 3.0, 0.05, 0.5),
    "catapult": Question(
        "Raise the learning rate step by step. **Above which learning rate does the loss first spike before it "
        "falls**, in units of $2/\\lambda_0$ ($\\lambda_0$: the sharpness at initialisation)?",
        "ηλ₀ / 2", 0.0, 4.0, 0.05, 2.0),
    "grokking": Question(
        "A network memorises modular addition quickly. **How many times as many steps does it take to reach 90% "
        "test accuracy as to reach 99% training accuracy?**", "steps to 90% test / steps to 99% train",
        1.0, 50.0, 0.5, 2.0),
    "lazy_vs_rich": Question(
        "Widen a two-layer network in the NTK parametrisation. Its hidden weights move less as the width $n$ grows: "
        "**as $n$ to which power?**", "exponent of the width n", -2.0, 1.0, 0.05, 0.0),
    "conservation_laws": Question(
        "Gradient flow conserves $\\lVert W_{l+1}\\rVert^2 - \\lVert W_l\\rVert^2$ exactly; each gradient-descent "
        "step breaks it by a small drift. **The drift per step grows as $\\eta$ to which power?**",
        "exponent of the learning rate η", 0.0, 4.0, 0.1, 1.0),
    "critical_batch_size": Question(
        "Beyond the critical batch size $B_\\mathrm{crit}$, bigger batches stop saving steps. The gradient noise "
        "scale $B_\\mathrm{noise}$ is measured along one run. **What is $B_\\mathrm{crit} / B_\\mathrm{noise}$?**",
        "B_crit / B_noise", -1.0, 1.0, 0.1, 0.0, log=True),
}


def _guesses(name: str) -> list[float]:
    return st.session_state.setdefault(f"class_guesses_{name}", [])


def hold(name: str, verdict) -> bool:
    """Draw class mode for a phenomenon whose result is stored; True while the result must stay hidden."""
    question = QUESTIONS.get(name)
    on = st.toggle("Class mode: guess first", key=KEY, bind="query-params",
                   help="Ask the class for the headline number before showing the measurement.")
    if not on:
        return False
    if question is None or verdict is None:
        st.caption("This phenomenon's verdict is not one number a class can guess, so its result is shown at once.")
        return False
    guesses = _guesses(name)
    revealed = st.session_state.get(f"class_revealed_{name}", False)
    present = ui.presentation()
    (st.subheader if present else st.markdown)(question.text)
    if not revealed:
        with st.container(horizontal=True, vertical_alignment="bottom"):
            value = st.slider("Your guess", question.lo, question.hi, question.start, question.step,
                              key=f"class_slider_{name}", format="10^%.1f" if question.log else "%.2f")
            if st.button("Add this guess", key=f"class_add_{name}", icon=":material/add:"):
                guesses.append(10.0 ** value if question.log else float(value))
            if st.button("Reveal the measurement", key=f"class_reveal_{name}", type="primary",
                         icon=":material/visibility:", disabled=not guesses):
                st.session_state[f"class_revealed_{name}"] = True
                st.rerun()
        if guesses:
            st.markdown(f"Guesses so far: {', '.join(f'{g:.3g}' for g in guesses)}")
        else:
            st.caption("Move the slider to the class's guess and press *Add this guess* (as many as you like), "
                       "then *Reveal the measurement*.")
        return True
    _reveal(name, question, verdict, guesses, present)
    return False


def _reveal(name: str, question: Question, verdict, guesses: list[float], present: bool) -> None:
    measured, expected, tol = verdict.measured, verdict.expected, verdict.tolerance
    band = None
    if tol and tol > 0:  # a factor on a log scale (B_crit within 2x of B_noise), else plus or minus
        band = (expected / tol, expected * tol) if question.log else (expected - tol, expected + tol)
    lo, hi = (10.0 ** question.lo, 10.0 ** question.hi) if question.log else (question.lo, question.hi)
    lo, hi = min([lo, *guesses, measured]), max([hi, *guesses, measured])
    nearest = min(guesses, key=lambda g: abs(g - measured)) if guesses else None
    line = f"Measured: **{measured:.3g}**"
    if nearest is not None:
        line += f" · closest guess: **{nearest:.3g}**"
    st.markdown(f"### {line}" if present else line)
    ui.show_figure(guesses_figure(guesses, measured, expected, band, question.unit, lo, hi, present,
                                  log_x=question.log), key=f"class_{name}", downloads=False)
    if st.button("Guess again", key=f"class_again_{name}", icon=":material/replay:"):
        st.session_state[f"class_revealed_{name}"] = False
        st.session_state[f"class_guesses_{name}"] = []
        st.rerun()
