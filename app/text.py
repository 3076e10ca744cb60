"""Text from users and datasets, shown as text: never as Markdown, HTML or math.

Every text a user typed or a dataset holds (paths, file and category names, error
messages) reaches the page through these helpers; never put such text into an
f-string of Markdown or HTML.
"""
from __future__ import annotations

import html
import string

_MD_SPECIAL = {ord(c): '\\' + c for c in string.punctuation}


def escape_markdown(text) -> str:
    r"""``text`` for a Markdown pane that shows it as text: every ASCII punctuation
    character backslash-escaped (CommonMark shows an escaped character literally, and
    HTML-escapes ``<``, ``>``, ``&``), so no markup, link, HTML or math is made of it.

    Every text from a user or a dataset (paths, file and category names, error
    messages) goes through this before it reaches a Markdown pane.

    Example:
        >>> print(escape_markdown('<b>*x*</b>'))
        \<b\>\*x\*\<\/b\>
    """
    return str(text).translate(_MD_SPECIAL)


def text_options(names) -> dict:
    """``{label: name}`` options of a choice widget whose labels show ``names`` as text
    (Bokeh's MultiChoice renders its labels as HTML)."""
    return {html.escape(n, quote=False): n for n in names}
