"""Choice widgets whose raw value (not their display label) lives in the URL.

Streamlit's own `bind="query-params"` writes a choice widget's *formatted label* into the URL, so a
selectbox showing "Does sharpness stop at 2/η?" for `edge_of_stability` would put the title in the
link. These wrappers keep the option itself in the URL instead (`?phenomenon=edge_of_stability`,
`?measure=sharpness&measure=esd`) and otherwise behave like the widget:

- when the page's URL carries a value this session has not published (a shared link, or a page link
  with query parameters), the widget follows the URL (values that are not options are ignored);
- after the widget is drawn, its value is written to the URL, or removed when it equals the default.

Plain inputs (numbers, toggles, sliders, multiselects without a format_func) use `bind=` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

_MARK = "_url_published:"


def _published(key: str) -> list[str] | None:
    return st.session_state.get(_MARK + key)


def _follow_url(key: str, options: list, multi: bool) -> None:
    raw = st.query_params.get_all(key)
    if not raw or raw == _published(key):
        return
    by_text = {str(o): o for o in options}
    if multi:
        value = [by_text[r] for r in raw if r in by_text]
        if value or raw == [""]:
            st.session_state[key] = value
    elif raw[-1] in by_text:
        st.session_state[key] = by_text[raw[-1]]


def _drop_invalid(key: str, options: list, multi: bool) -> None:
    if key not in st.session_state:
        return
    value = st.session_state[key]
    if multi:
        if not isinstance(value, (list, tuple)) or any(v not in options for v in value):
            del st.session_state[key]
    elif value is not None and value not in options:
        del st.session_state[key]


def _publish(key: str, value: Any, default: Any, multi: bool) -> None:
    if multi:
        out = [str(v) for v in (value or [])]
        dflt = [str(v) for v in (default or [])]
        if not out and dflt:
            out = [""]  # an explicit empty choice differs from the default
    else:
        out = [] if value is None else [str(value)]
        dflt = [] if default is None else [str(default)]
    if out == dflt:
        if key in st.query_params:
            del st.query_params[key]
        st.session_state[_MARK + key] = []
    else:
        if st.query_params.get_all(key) != out:
            st.query_params[key] = out
        st.session_state[_MARK + key] = out


def choice(widget: Callable, label: str, options: Sequence, *, key: str, default: Any = None, **kwargs) -> Any:
    """`widget` (st.selectbox, st.multiselect, st.segmented_control, st.pills, st.radio) with its raw value in the URL.

    `default` is the default value (a list for multiselect/multi segmented controls). The container
    can be given as `widget=column.selectbox`.
    """
    options = list(options)
    kwargs.setdefault("persist_state", "session")  # keeps its value across page switches, like bound widgets
    name = getattr(widget, "__name__", "")
    multi = name == "multiselect" or kwargs.get("selection_mode") == "multi"
    _follow_url(key, options, multi)
    _drop_invalid(key, options, multi)
    if key not in st.session_state:
        if name in ("selectbox", "radio"):
            kwargs["index"] = options.index(default) if default in options else (0 if options else None)
        else:
            kwargs["default"] = [d for d in default if d in options] if multi and default else (
                default if default in options else None)
    value = widget(label, options, key=key, **kwargs)
    if name in ("selectbox", "radio") and default is None and options:
        default = options[0]
    _publish(key, value, default, multi)
    return value
