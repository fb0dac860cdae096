"""Where the CPU goes, from a py-spy profile in the collapsed-stack format (``py-spy record
--format raw --full-filenames``): one line per distinct stack, outermost frame first,
``frame;frame;...;frame COUNT``, each frame ``function (path:line)``. Imported as
``bench.stacks`` by bench/cpu.py.

py-spy leaves out idle threads by default (a thread blocked in ``epoll_wait`` or on a lock),
so every sample is a moment a Python thread was on a CPU: shares of samples are shares of
the process's Python CPU time.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*) \((?P<path>.*?)(?::(?P<line>\d+))?\)$")
STDLIB = re.compile(r"/lib/python3\.\d+/")
OURS = "pamtalk"
OUTSIDE = "(no frame of ours: the event loop, uvicorn, connection handling)"
LOOP = "event loop (uvloop, C)"
ENTRY = "Runner.run"  # asyncio.run's frame: what runs under it is the loop's callbacks and tasks


@dataclass(frozen=True)
class Frame:
    function: str
    path: str

    @property
    def package(self) -> str:
        return package_of(self.path)

    @property
    def stdlib(self) -> bool:
        return "site-packages/" not in self.path and bool(STDLIB.search(self.path))

    @property
    def where(self) -> str:
        """The function and a short path: ``Session.execute (sqlalchemy/orm/session.py)``."""
        return f"{self.function} ({short_path(self.path)})"


@dataclass
class Profile:
    """The samples of one window: by leaf frame (self time); by owner, the package of the
    innermost frame that is not the standard library's (asyncio's stream write under redis
    is redis's; the loop's own C code, with no frame under ``asyncio.run``, is the loop's);
    and by the innermost frame of our package below the CLI (inclusive time of our code)."""

    samples: int = 0
    leaves: Counter[Frame] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)
    ours: Counter[str] = field(default_factory=Counter)

    def add(self, stack: list[Frame], count: int) -> None:
        if not stack:
            return
        self.samples += count
        self.leaves[stack[-1]] += count
        self.packages[owner(stack)] += count
        mine = next((f for f in reversed(stack) if ours(f)), None)
        self.ours[mine.where if mine else OUTSIDE] += count

    def share(self, count: int) -> float:
        return count / self.samples if self.samples else 0.0


def ours(frame: Frame) -> bool:
    """A frame of our package that serves a request (not the ``pamtalk serve`` entry)."""
    return frame.package == OURS and f"/{OURS}/cli/" not in frame.path


def owner(stack: list[Frame]) -> str:
    entry = next((i for i, f in enumerate(stack) if f.function == ENTRY), -1)
    below = stack[entry + 1 :]
    if entry >= 0 and not below:
        return LOOP
    return next((f.package for f in reversed(below) if not f.stdlib), stack[-1].package)


def package_of(path: str) -> str:
    """The distribution a file belongs to: the folder under site-packages, ``pamtalk`` for
    this repository's package, the module for the standard library (``asyncio``, ``json``)."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if f"/{OURS}/" in path or path.startswith(f"{OURS}/"):
        return OURS
    if stdlib := STDLIB.search(path):
        return path[stdlib.end() :].split("/", 1)[0].removesuffix(".py")
    return "(script)" if "/bin/" in path else path.rsplit("/", 1)[-1] or "?"


def short_path(path: str) -> str:
    """The path from the package folder on: ``sqlalchemy/orm/session.py``."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if f"/{OURS}/" in path:
        return OURS + "/" + path.split(f"/{OURS}/", 1)[1]
    if stdlib := STDLIB.search(path):
        return path[stdlib.end() :]
    return path


def parse_frame(text: str) -> Frame:
    found = FRAME.match(text)
    if not found:  # a thread name (--threads) or a frame py-spy could not name
        return Frame(text, "")
    return Frame(found["function"], found["path"])


def parse(text: str) -> Profile:
    profile = Profile()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            profile.add([parse_frame(f) for f in stack.split(";")], int(count))
    return profile


def read(path: Path) -> Profile:
    return parse(path.read_text(errors="replace")) if path.exists() else Profile()
