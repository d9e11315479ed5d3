"""Small UI pieces every page uses: header, figures with downloads, tables with CSV, messages.

Every figure is shown with an interactive-HTML download (generated only when clicked) and, where the
`kaleido` exporter is installed, a PNG download; the chart's own camera button always saves a PNG
from the browser. Every table gets a CSV download. Presentation mode (a URL-bound toggle in the
sidebar) enlarges fonts and lines and collapses controls.
"""

from __future__ import annotations

import importlib.util
import re
from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:  # the home page uses this module; pandas and plotly's figures load with the pages that draw
    import pandas as pd
    import plotly.graph_objects as go

PRESENT_KEY = "present"


def presentation() -> bool:
    """Whether presentation mode is on (the sidebar toggle, bound to ?present=true)."""
    value = st.session_state.get(PRESENT_KEY)
    if value is None:
        raw = st.query_params.get(PRESENT_KEY, "")
        return str(raw).lower() in ("true", "1")
    return bool(value)


def ensure_app_shell() -> None:
    """Route a deep link on a fresh server through app.py.

    Until some session has run app.py's `st.navigation`, Streamlit treats a `pages/` folder as a legacy
    (v1) multipage app and runs a deep-linked page (`/explore?...`) by itself: no wide layout, no shared
    sidebar, file names as navigation. When that happens, switch Streamlit to `st.navigation` mode and
    rerun: the rerun goes through app.py and lands on the same page (same url path, same page hash).
    This happens at most once per server process. (AppTest resets the mode before every run; there pages
    run by themselves, without the shared sidebar, and no rerun is forced.)
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.state.common import TESTING_KEY
    except ImportError:  # a future Streamlit without the legacy mode
        return
    if TESTING_KEY in st.session_state:  # under AppTest
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def header(title: str, explanation: str) -> None:
    """One clear title and a one-paragraph explanation (every page starts with this)."""
    ensure_app_shell()
    st.title(title)
    st.markdown(explanation)


def controls(label: str = "Settings", expanded: bool = True):
    """A container for a page's controls: an expander, collapsed in presentation mode."""
    return st.expander(label, expanded=expanded and not presentation(), icon=":material/tune:")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "figure"


def _png_available() -> bool:
    return importlib.util.find_spec("kaleido") is not None


def show_figure(fig: go.Figure, key: str, name: str | None = None, downloads: bool = True) -> None:
    """Draw a Plotly figure with its downloads (HTML always; PNG when kaleido is installed)."""
    name = name or _slug(str(fig.layout.title.text or key))
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2}}
    st.plotly_chart(fig, key=f"chart_{key}", config=config)
    if not downloads:
        return
    row = st.container(horizontal=True, gap="small")
    row.download_button("Download HTML", data=lambda: fig.to_html(include_plotlyjs=True, full_html=True),
                            file_name=f"{name}.html", mime="text/html", key=f"html_{key}", on_click="ignore",
                            icon=":material/download:", help="Interactive figure, opens in any browser offline. For a "
                            "PNG use the camera button at the chart's top right.")
    if _png_available():
        row.download_button("PNG", data=lambda: fig.to_image(format="png", scale=2), file_name=f"{name}.png",
                                mime="image/png", key=f"png_{key}", on_click="ignore", icon=":material/image:")


def show_table(table: pd.DataFrame, name: str, **kwargs):
    """A dataframe with a CSV download `<name>.csv`; returns what st.dataframe returns (a selection when on_select)."""
    result = st.dataframe(table, **kwargs)
    st.download_button("CSV", data=table.to_csv(index=False).encode(), file_name=f"{name}.csv", mime="text/csv",
                       key=f"csv_{name}", on_click="ignore", icon=":material/download:")
    return result


def error(err: Exception | str, prefix: str = "") -> None:
    """An error in the user's language: the message, never a traceback."""
    text = str(err) if not isinstance(err, str) else err
    st.error(f"{prefix}{text}", icon=":material/error:")


def share_link(note: str = "Link to this view") -> None:
    """The page's address with its state (settings live in the query parameters), ready to copy."""
    from urllib.parse import urlencode

    try:
        url = st.context.url or ""
    except Exception:
        url = ""
    pairs = [(k, v) for k in st.query_params for v in st.query_params.get_all(k)]
    query = urlencode(pairs)
    base = url.split("?")[0] if url else ""
    with st.popover(note, icon=":material/link:"):
        st.caption("Copy this link: it opens this page with the same settings (and, once stored, the same results).")
        st.code(f"{base}?{query}" if query else (base or "(this page with default settings)"), language=None)


def presentation_css() -> None:
    """Larger text for projectors (charts are enlarged by their own layout)."""
    st.html("""<style>
    .stMainBlockContainer, .stMarkdown p, .stMarkdown li, label, .stCaption { font-size: 1.25rem !important; }
    h1 { font-size: 3rem !important; } h2 { font-size: 2.3rem !important; } h3 { font-size: 1.8rem !important; }
    </style>""")


_TEX = {"eta": "η", "lambda": "λ", "alpha": "α", "beta": "β", "gamma": "γ", "mu": "μ", "sigma": "σ", "Sigma": "Σ",
        "theta": "θ", "tau": "τ", "kappa": "κ", "rho": "ρ", "approx": "≈", "times": "×", "cdot": "·", "geq": "≥",
        "leq": "≤", "ge": "≥", "le": "≤", "propto": "∝", "infty": "∞", "lVert": "‖", "rVert": "‖", "max": "max",
        "min": "min", "mathrm": "", "text": "", "left": "", "right": "", "sqrt": "√"}
_OPERATORS = {"approx", "times", "cdot", "geq", "leq", "ge", "le", "propto"}  # spaced on both sides
_SUP = str.maketrans("0123456789+-()n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾ⁿ")
_SUB = str.maketrans("0123456789+-()", "₀₁₂₃₄₅₆₇₈₉₊₋₍₎")


def _script(marker: str, table: dict, body: str) -> str:
    """A sub- or superscript in Unicode where every character has one, else marker + (body)."""
    if all(ord(ch) in table for ch in body):
        return body.translate(table)
    return f"{marker}{body}" if body.isalnum() else f"{marker}({body})"


def plain(text: str) -> str:
    """Markdown math ($...$) as plain Unicode, for places that draw no markdown (select boxes, chart titles).

    '$\\lambda_{\\max} \\le 2/\\eta$' -> 'λ_max ≤ 2/η'; '$\\lVert W\\rVert^2$' -> '‖W‖²'. Text outside $...$ is kept.
    """
    def convert(math_text: str) -> str:
        math_text = re.sub(r"\\([A-Za-z]+) ?", lambda m: f" {_TEX[m.group(1)]} " if m.group(1) in _OPERATORS
                           else _TEX.get(m.group(1), m.group(1)), math_text)
        math_text = math_text.replace("\\|", "‖").replace("\\", "")
        math_text = re.sub(r"\^\{([^{}]*)\}|\^(.)", lambda m: _script("^", _SUP, m.group(1) or m.group(2)), math_text)
        math_text = re.sub(r"_\{([^{}]*)\}|_(.)", lambda m: _script("_", _SUB, m.group(1) or m.group(2)), math_text)
        return re.sub(r" {2,}", " ", math_text.replace("{", "").replace("}", "")).strip()

    return re.sub(r"\$([^$]+)\$", lambda m: convert(m.group(1)), text)


def verdict_badge(passed: bool | None) -> str:
    return {True: ":green-badge[holds]", False: ":red-badge[fails]"}.get(passed, ":gray-badge[n/a]")
