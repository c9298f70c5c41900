"""Untrusted text into generated files: Markdown, CSV cells and links.

Everything a run or a submitter controls (instructions, policy and variant names, notes, paths, any run.json string)
passes through one of these before vgb writes it into ``report.md``, ``vgb compare``'s table, a CSV or the rendered
leaderboard. HTML uses :func:`html.escape` directly. Nothing here reads files: links are checked where the run
folder is known (:mod:`.report`).
"""

from __future__ import annotations

import unicodedata

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""A CSV cell starting with one of these is run as a formula by spreadsheets (CSV injection)."""

_MD = {"\\": "\\\\", "|": "\\|", "`": "\\`", "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def control_chars(text: str) -> list[str]:
    """The control characters (Unicode category Cc: NUL, tab, newline, ESC, DEL, C1 ...) in ``text``, each once,
    as ``U+XXXX``."""
    return list(dict.fromkeys(f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cc"))


def printable(text: object, newlines: bool = False) -> str:
    """Text for a terminal: control characters (an ESC sequence could repaint the terminal) written as escapes
    (``\\x1b``, ``\\n``); with ``newlines``, a message's own line breaks are kept."""
    keep = "\n" if newlines else ""
    return "".join(
        repr(c)[1:-1] if unicodedata.category(c) == "Cc" and c not in keep else c for c in str(text)
    )


def md(text: object) -> str:
    """Text for one line of Markdown, table cells included: raw HTML neutralised (``& < >`` as entities), ``|``,
    backslashes and backticks escaped, control characters (newlines too) as spaces, and no link syntax (``](`` and
    ``]:`` are escaped, so no inline link, image or link definition can form). It renders as the text itself."""
    s = "".join(" " if unicodedata.category(c) == "Cc" else _MD.get(c, c) for c in str(text))
    return s.replace("](", "]\\(").replace("]:", "]\\:")


def md_code(text: object) -> str:
    """``text`` as an inline code span when that shows it verbatim and safely, else as :func:`md` text."""
    s = str(text)
    if s and not control_chars(s) and not any(c in s for c in "`<>&|\\"):
        return f"`{s}`"
    return md(s)


def csv_text(text: str) -> str:
    """A text cell neutralised for spreadsheets: one starting with a formula prefix gets a leading ``'`` (which
    spreadsheets show as text). Idempotent. Numbers are not text: do not pass them here (``-0.05`` stays a number)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_cell(value: object) -> object:
    """A CSV cell as report CSVs write it: ``str`` values through :func:`csv_text`, numbers and booleans as they
    are."""
    return csv_text(value) if isinstance(value, str) else value
