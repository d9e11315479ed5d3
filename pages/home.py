"""Home: the five research directions of learning mechanics, each phenomenon as a card from the gallery."""

import streamlit as st

from learnmech_app import phenomena_view as pv
from learnmech_app import ui
from learnmech_core.phenomena import DIRECTIONS

ui.header(
    "Learning mechanics: what do neural networks do, whatever their architecture?",
    "Training a neural network is noisy and full of details, yet some behaviours recur across architectures, "
    "datasets and scales, often with a number that theory predicts. This explorer states each such phenomenon as "
    "a falsifiable prediction and checks it against measured training runs. The cards below come from the "
    "precomputed gallery, so nothing trains until you ask: open one to see its claim, its source and the verdict, "
    "rerun it with your own architectures, or build runs from scratch on **Explore**.",
)
present = ui.presentation()
names = pv.safe_names()
if not names:
    st.info("No phenomena are registered yet. Meanwhile, **Explore** trains any model live.", icon=":material/info:")
phs = [ph for ph in (pv.safe_get(n) for n in names) if ph is not None]
per_row = 2 if present else 3
pv.start_building()  # the small figures are drawn in the background; verdicts show at once


def drawing(info: dict) -> bool:
    """Whether a card's figure is still being drawn in the background."""
    return info.get("figure") is None and info["state"] in ("ok", "pending")


def show_card(ph) -> bool:
    """One card; returns whether its figure is still being drawn."""
    info = pv.card(ph.name, present)
    st.markdown(f"**{ph.title}**")
    if info.get("figure") is not None:
        st.plotly_chart(info["figure"], key=f"card_{ph.name}", config={"displayModeBar": False, "staticPlot": True})
    elif info["state"] in ("ok", "pending"):
        st.caption(":material/hourglass_top: drawing the figure ...")
    if info["state"] == "ok":
        st.markdown(f"{ui.verdict_badge(info['passed'])} {info['summary']}")
    elif info["state"] == "absent":
        have = f" ({info['have']} of {info['n']} runs)" if info.get("n") else ""
        st.caption(f"Not in the gallery yet{have}: open it and press Run.")
    elif info["state"] == "error":
        st.caption(f"Not available: {info.get('message', 'unknown problem')}")
    st.page_link("pages/phenomena.py", label="Open", icon=":material/arrow_forward:",
                 query_params={"phenomenon": ph.name})
    return drawing(info)


def catalogue(polling: bool = False) -> None:
    waiting = False
    for direction, title in DIRECTIONS.items():
        members = [ph for ph in phs if ph.direction == direction]
        st.header(title, divider="gray")
        st.caption(pv.DIRECTION_TEXT.get(direction, ""))
        if not members:
            st.caption("No phenomena in this direction yet.")
            continue
        for i in range(0, len(members), per_row):
            for col, ph in zip(st.columns(per_row), members[i:i + per_row]):
                with col.container(border=True, height="stretch"):
                    waiting = show_card(ph) or waiting
    if polling and not waiting:
        st.rerun(scope="app")  # everything drawn: stop polling


if any(drawing(pv.card(ph.name)) for ph in phs):
    st.fragment(run_every=1.5)(catalogue)(polling=True)
else:
    catalogue()
