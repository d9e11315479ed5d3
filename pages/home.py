"""Home: the five research directions of learning mechanics, each phenomenon as a card from the gallery.

The first page of a fresh server: everything it shows is read from the gallery's files, and it imports
nothing from `learnmech_core` (torch comes with it) unless the gallery has no card images.
"""

import streamlit as st

from learnmech_app import cards, ui

ui.header(
    "Learning mechanics: what do neural networks do, whatever their architecture?",
    "Training a neural network is noisy and full of details, yet some behaviours recur across architectures, "
    "datasets and scales, often with a number that theory predicts. This explorer states each such phenomenon as "
    "a falsifiable prediction and checks it against measured training runs. The cards below come from the "
    "precomputed gallery, so nothing trains until you ask: open one to see its claim, its source and the verdict, "
    "rerun it with your own architectures, or build runs from scratch on **Explore**.",
)
present = ui.presentation()
entries = cards.listing()  # the gallery's phenomena, read from its card index
if not entries:  # no card images: every registered phenomenon, each saying what it lacks
    from learnmech_app import phenomena_view as pv

    phs = [ph for ph in (pv.safe_get(n) for n in pv.safe_names()) if ph is not None]
    entries = [(ph.name, ph.title, ph.direction) for ph in phs]
if not entries:
    st.info("No phenomena are registered yet. Meanwhile, **Explore** trains any model live.", icon=":material/info:")
per_row = 2 if present else 3

for direction, (title, text) in cards.DIRECTIONS.items():
    members = [(name, question) for name, question, where in entries if where == direction]
    st.header(title, divider="gray")
    st.caption(text)
    if not members:
        st.caption("No phenomena in this direction yet.")
        continue
    for i in range(0, len(members), per_row):
        for col, (name, question) in zip(st.columns(per_row), members[i:i + per_row], strict=False):
            with col.container(border=True, height="stretch"):
                cards.show(name, question)
