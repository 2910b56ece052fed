"""Learner text as plain text, wherever the grader writes it for people and programs.

Learner text is anything a learner chose: a file or folder name, a cell label, an exception's
type and message, printed output. It reaches four kinds of reader, each with one function here
(the threat model, autograder/THREATS.md, boundary 3):

- :func:`line` — a terminal or a log: no control characters (escape sequences, carriage
  returns, bidirectional overrides), one line, bounded; :func:`block` keeps line breaks;
- :func:`csv_field` — a spreadsheet: :func:`line`, and never read as a formula;
- :func:`markdown` — a Markdown cell of a feedback notebook: no markup, no HTML, one line;
- HTML pages get learner text through nbconvert, which escapes outputs and renders Markdown
  cells from :func:`markdown`'s output.
"""

from __future__ import annotations

import re
import unicodedata

#: Characters that move the cursor, change colours or reorder text on a terminal: C0 and C1
#: controls, DEL, and Unicode's format characters (bidirectional overrides, zero-width ones).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Cells a spreadsheet reads as a formula (OWASP's list: = + - @, also after blanks; tab and
#: carriage return are blanks once :func:`line` has replaced them).
_FORMULA = ("=", "+", "-", "@")
#: What Markdown or HTML could read as markup.
_MARKUP = re.compile(r"[\\`*_{}\[\]()#+\-.!|~<>&\"'=:$]")


def _visible(char: str) -> str:
    if _CONTROL.fullmatch(char):
        return " " if char in "\t\n\r" else "?"
    return "?" if unicodedata.category(char) == "Cf" else char


def line(text: object, limit: int = 300) -> str:
    """``text`` as one line of at most ``limit`` characters, with every control or format
    character replaced (a line break by a space, anything else by ``?``)."""
    text = str(text)
    cut = len(text) > limit
    text = "".join(_visible(char) for char in text[:limit])
    return text + " …" if cut else text


def block(text: object, limit: int = 8000) -> str:
    """``text`` as lines (a traceback, a message over several lines) of at most ``limit``
    characters in all: line breaks kept, every other control or format character replaced."""
    text = str(text).replace("\r\n", "\n")
    cut = len(text) > limit
    text = "\n".join(line(part, limit) for part in text[:limit].split("\n"))
    return text + " …" if cut else text


def csv_field(text: object, limit: int = 1000) -> str:
    """``text`` for a CSV cell: :func:`line`, and a leading ``'`` where a spreadsheet would
    otherwise start a formula."""
    text = line(text, limit)
    return "'" + text if text.lstrip().startswith(_FORMULA) else text


def markdown(text: object, limit: int = 3000) -> str:
    """``text`` for a Markdown cell: :func:`line` with every character that Markdown or HTML
    would read as markup written as an HTML entity, so it shows as typed."""
    return _MARKUP.sub(lambda match: f"&#{ord(match.group())};", line(text, limit))
