"""``make``'s install stage: pip with one progress line instead of minutes of silence (or
of pip's hundreds of lines). Runs before pamtalk is installed, so the standard library only:

    python3 -m pamtalk.pip_progress .venv/bin/pip install -e '.[train]'

On a terminal the line is rewritten in place; in a log a line is written every 15 s. On
failure pip's last lines are shown and its exit status is kept.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import deque

PREFIX = "[install]"
LOG_EVERY_S = 15.0
_NAME = re.compile(r"^(Collecting|Downloading|Using cached|Requirement already satisfied:)\s+(\S+)")


class Progress:
    """What pip has done so far, from its output lines."""

    def __init__(self) -> None:
        self.collected = 0
        self.satisfied = 0
        self.current = ""
        self.installing = 0
        self.installed = 0

    def feed(self, line: str) -> None:
        line = line.strip()
        if match := _NAME.match(line):
            verb, name = match.groups()
            if verb == "Collecting":
                self.collected += 1
            elif verb.startswith("Requirement"):
                self.satisfied += 1
            self.current = f"{verb.lower().rstrip(':')} {name.split('/')[-1]}"
        elif line.startswith("Installing collected packages:"):
            self.installing = len(line.split(":", 1)[1].split(","))
            self.current = f"installing {self.installing} packages"
        elif line.startswith("Successfully installed"):
            self.installed = len(line.split()) - 2

    def status(self, elapsed: float) -> str:
        counts = f"{self.collected} collected, {self.satisfied} already there"
        return f"{PREFIX} {elapsed:4.0f} s: {counts}; {self.current or 'resolving'}"

    def summary(self, elapsed: float) -> str:
        if self.installed:
            done = f"{self.installed} packages installed"
        else:
            done = "nothing new to install"
        return f"{PREFIX} {done} in {elapsed:.0f} s"


def run(command: list[str]) -> int:
    interactive = sys.stdout.isatty()
    print(f"{PREFIX} {' '.join(command)} (the first time: a few minutes) ...", flush=True)
    started = last = time.monotonic()
    progress, tail = Progress(), deque[str](maxlen=40)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as pip:
        assert pip.stdout is not None
        for line in pip.stdout:
            tail.append(line.rstrip())
            progress.feed(line)
            now = time.monotonic()
            if interactive:
                print(f"\r\033[K{progress.status(now - started)}"[:200], end="", flush=True)
            elif now - last >= LOG_EVERY_S:
                print(progress.status(now - started), flush=True)
                last = now
    if interactive:
        print("\r\033[K", end="")
    elapsed = time.monotonic() - started
    if pip.returncode != 0:
        print("\n".join(tail), file=sys.stderr)
        print(f"{PREFIX} failed after {elapsed:.0f} s (pip exited {pip.returncode})", flush=True)
        return pip.returncode
    print(progress.summary(elapsed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
