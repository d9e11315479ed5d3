"""The verdict section of the Phenomena page: the source sentence, each clause, the seeds, what we tried."""

from __future__ import annotations

import streamlit as st

from learnmech_core.plots.verdict import seed_strip

from . import phenomena_view as pv
from . import ui


def source(ph) -> None:
    """The sentence of the source that the criterion tests, quoted, with its citation."""
    if ph.source is not None:
        st.markdown(f"> {ph.source.quote}\n>\n> \u2014 {ph.source.citation}")


def verdict(ph, res: pv.Result, present: bool) -> None:
    """Headline, one line per clause, the seeds (table and strip), and the per-run table."""
    v = res.verdict
    if v is None:
        return
    st.markdown(f"### {ui.verdict_badge(v.passed)} {pv.summary(v)}")
    seeds = sorted(res.per_seed)
    for i, c in enumerate(v.clauses):
        mark = {True: ":green[holds]", False: ":red[fails]"}.get(c.passed, ":gray[not tested here]")
        judged = [res.per_seed[s].clauses[i].passed for s in seeds if i < len(res.per_seed[s].clauses)]
        if len(judged) > 1 and c.passed is not None:  # a clause's mark is a majority: say of how many seeds
            mark += f" on {sum(p is True for p in judged)} of {len(judged)} seeds"
        st.markdown(f"- **{c.claim}**: {c.quantity} = {pv._fmt(c.measured)} (predicted: {c.criterion.text}): {mark}"
                    + (f" \u2014 {c.note}" if c.note else "") + (f" ({c.needs})" if c.needs else ""))
    st.caption(v.explanation)
    if len(res.per_seed) > 1 and v.clauses:
        head = v.clauses[0]
        left, right = st.columns([3, 2])
        with left:
            heads = [res.per_seed[s].clauses[0] if res.per_seed[s].clauses else None for s in seeds]
            fig = seed_strip(seeds, [h.measured if h else None for h in heads],
                             [h.passed if h else None for h in heads],
                             head.criterion.bounds(), head.quantity, head.criterion.text, present,
                             whole=[res.per_seed[s].passed for s in seeds])
            ui.show_figure(fig, key=f"seeds_{ph.name}", name=f"{ph.name}_seeds", downloads=False)
        with right:
            ui.show_table(pv.seed_table(res.per_seed), f"{ph.name}_seeds", hide_index=True)


def per_run(ph, res: pv.Result) -> None:
    if res.verdict is not None and res.verdict.per_run:
        st.subheader("Verdict per run")
        ui.show_table(pv.verdict_table(res.verdict), f"{ph.name}_verdict", hide_index=True)


def tried(ph) -> None:
    """Set-ups that did not reproduce the claim stay on the page."""
    if ph.tried:
        with st.expander(f"What we tried ({len(ph.tried)} set-ups that did not reproduce the claim)",
                         icon=":material/history:"):
            ui.show_table(pv.tried_table(ph), f"{ph.name}_tried", hide_index=True)
