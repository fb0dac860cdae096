"""The one writer of docs/benchmarks.md: a script's ``--write`` replaces the text between its
own pair of marker lines and leaves every other byte of the file as it was.

A generated section is delimited by two lines of their own::

    <!-- BEGIN bench/serving.py -->
    ...what bench/serving.py --write renders...
    <!-- END bench/serving.py -->

named after the script that writes it. Headings, introductions and the readings of the
numbers sit outside the markers and are written by hand; no script touches them. A missing,
repeated or misordered marker is an error (``MarkerError``), never a guess: add the markers
by hand where the section belongs.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
MARKER = re.compile(r"^<!-- (BEGIN|END) (\S+) -->$", re.MULTILINE)


class MarkerError(ValueError):
    """The markers of a section are missing, repeated or out of order."""


def section_name(script: str | Path) -> str:
    """The section a script writes: ``bench/<its file name>``."""
    return f"bench/{Path(script).name}"


def section_names(text: str) -> list[str]:
    """Names of the sections that have a BEGIN marker, in the order they appear."""
    return [m[2] for m in MARKER.finditer(text) if m[1] == "BEGIN"]


def _only(text: str, kind: str, name: str) -> re.Match[str]:
    found = [m for m in MARKER.finditer(text) if m[1] == kind and m[2] == name]
    if len(found) != 1:
        what = "missing" if not found else f"there {len(found)} times"
        raise MarkerError(f"the line '<!-- {kind} {name} -->' is {what}")
    return found[0]


def span(text: str, name: str) -> tuple[int, int]:
    """Where the generated text of ``name`` lies: from the end of its BEGIN line to the start
    of its END line."""
    begin, end = _only(text, "BEGIN", name), _only(text, "END", name)
    if end.start() < begin.end():
        raise MarkerError(f"'<!-- END {name} -->' comes before its BEGIN")
    return begin.end(), end.start()


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the section ``name`` holding ``body`` (one blank line either side)."""
    start, stop = span(text, name)
    return text[:start] + "\n\n" + body.strip("\n") + "\n\n" + text[stop:]


def check_section(name: str, path: Path = DOCS) -> None:
    """Raises ``MarkerError`` now, before a long run, if ``write_section`` would fail."""
    span(path.read_bytes().decode("utf-8"), name)


def write_section(name: str, body: str, path: Path = DOCS) -> None:
    """Replaces the section ``name`` of the file; bytes are read and written as they are
    (no newline translation), so everything outside the markers stays identical."""
    text = path.read_bytes().decode("utf-8")
    path.write_bytes(replace_section(text, name, body).encode("utf-8"))
