"""The README runs verbatim (issue 19 item 1): its shell and Python blocks, in order, against
a live `pamtalk serve` started as `make run` starts it, from a folder laid out like a clone.

What differs from a user's terminal, and why:
- the server listens on a free port: ``localhost:8000`` / ``127.0.0.1:8000`` in the blocks
  are rewritten to it (nothing else is);
- the server's database is seeded by ``pamtalk init --no-models`` and its registry is the
  suite's tiny trained models, plus a version 2 of each (what the skipped ``pamtalk train``
  block registers on a fresh machine);
- ``.venv/bin`` is taken off PATH, so the README's own activation step must put ``pamtalk``
  there.

Each block runs in bash with ``set -eo pipefail``; variables carry over from block to block
(as in one terminal); ``curl`` fails on an HTTP status >= 400 (``--fail-with-body``); a
Python block runs as ``python - <<EOF`` in the same shell. A block preceded by
``<!-- readme-test: skip (reason) -->`` is reported as skipped with its reason (``-rs``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pamtalk.registry import publish, store
from pamtalk.settings import Settings
from tests import services
from tests.conftest import ModelStore

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((.+)\)\s*-->")
LANGUAGES = {"sh": "shell", "bash": "shell", "python": "python"}
BLOCK_TIMEOUT_S = 120


@dataclass(frozen=True)
class Block:
    line: int
    language: str  # "shell" or "python"
    code: str
    skip: str | None  # the reason, when marked

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.language})"


def readme_blocks(text: str) -> list[Block]:
    """The shell and Python blocks of ``text``, with the skip mark on the line before each."""
    found = []
    for match in FENCE.finditer(text):
        language = LANGUAGES.get(match.group(1))
        if language is None:
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = SKIP.search(before)
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(line, language, match.group(2), mark.group(1) if mark else None))
    return found


BLOCKS = readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_blocks_to_run() -> None:
    assert sum(b.skip is None for b in BLOCKS) >= 8
    assert all(b.skip.strip() for b in BLOCKS if b.skip is not None)  # every skip says why


def test_the_terminal_carries_variables_and_fails_on_errors(tmp_path: Path) -> None:
    """The runner itself: state carries over, a failing command or curl fails the block,
    the port is rewritten, and pamtalk is not on PATH until the README puts it there."""
    env = {"PATH": _without_venv(os.environ["PATH"])}
    state = tmp_path / "state.sh"
    state.write_text("")
    term = Terminal(tmp_path, env, state, port=1)

    def block(code: str, language: str = "shell") -> Block:
        return Block(1, language, code, None)

    assert term.run(block("A=1\nB=$((A + 1))\n")).returncode == 0
    assert term.run(block('test "$B" = 2\n')).returncode == 0
    assert term.run(block('import os\nassert os.environ["B"] == "2"\n', "python")).returncode == 0
    assert term.run(block("false\necho not reached\n")).returncode != 0
    assert term.run(block("X=$(false | cat)\n")).returncode != 0  # pipefail, set -e
    refused = term.run(block("curl -s localhost:8000/healthz\n"))  # rewritten to port 1
    assert refused.returncode == 7, refused.stderr  # curl: could not connect
    if shutil.which("pamtalk", path=env["PATH"]) is None:
        assert term.run(block("pamtalk --help\n")).returncode == 127


@dataclass
class Terminal:
    """One user's terminal: a folder, an environment, the variables set so far."""

    folder: Path
    env: dict[str, str]
    state: Path
    port: int
    failed: Block | None = None

    def run(self, block: Block) -> subprocess.CompletedProcess[str]:
        code = re.sub(r"(localhost|127\.0\.0\.1):8000\b", rf"\g<1>:{self.port}", block.code)
        if block.language == "python":
            code = f"python - <<'README_PYTHON'\n{code}README_PYTHON\n"
        script = "\n".join(
            [
                "set -eo pipefail",
                f". {self.state}",
                'curl() { command curl --fail-with-body "$@"; }',
                "set -a  # what the block sets is kept for the next one",
                code,
                f"export -p | grep -v '^declare -[a-zA-Z]*r' > {self.state}",
            ]
        )
        return subprocess.run(
            ["bash", "-c", script],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )


def _without_venv(path: str) -> str:
    """PATH without this environment's bin folder: the README must activate it."""
    return os.pathsep.join(
        p for p in path.split(os.pathsep) if p and Path(p).resolve() != BIN.resolve()
    )


def _register_second_versions(tracking_uri: str, work: Path) -> None:
    settings = Settings(mlflow_tracking_uri=tracking_uri)
    client = store.connect(settings)
    for kind in ("demand", "esg"):
        _, version = publish.train_and_register(
            client, settings, kind, out_dir=work / kind, tiny=True
        )
        assert version == "2"


@pytest.fixture(scope="module")
def terminal(
    model_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Terminal]:
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip(f"the README's examples need {tool}")
    if not (ROOT / ".venv" / "bin" / "activate").exists():
        pytest.skip("no .venv: the README's activation step needs the one `make run` makes")
    base = tmp_path_factory.mktemp("readme")
    folder = base / "main"  # a clone: .venv in it, ../shared beside it
    folder.mkdir()
    (folder / ".venv").symlink_to(ROOT / ".venv")
    if (ROOT.parent / "shared").exists():
        (base / "shared").symlink_to(ROOT.parent / "shared")
    tracking_uri = model_store.copy(base / "models")

    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PAMTALK_") and k != "VIRTUAL_ENV"
    }
    env["PATH"] = _without_venv(env.get("PATH", ""))
    env |= {
        "PAMTALK_DATABASE_URL": f"sqlite+aiosqlite:///{base}/pamtalk.db",
        "PAMTALK_MLFLOW_TRACKING_URI": tracking_uri,
        "PAMTALK_ENV": "dev",
        "PAMTALK_MODEL_WATCH_INTERVAL": "0",
    }
    pamtalk = str(BIN / "pamtalk")
    init = subprocess.run(
        [pamtalk, "init", "--no-models"], cwd=folder, env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stdout + init.stderr

    port = services.free_port()
    log = base / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [pamtalk, "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _register_second_versions(tracking_uri, base / "train")  # while the server starts
        services.wait_until_up(f"http://127.0.0.1:{port}/readyz", server, log, timeout=90)
        state = base / "state.sh"
        state.write_text("")
        yield Terminal(folder, env, state, port)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_readme_block(block: Block, terminal: Terminal) -> None:
    if block.skip is not None:
        pytest.skip(f"{block}: {block.skip}")
    if terminal.failed is not None:
        pytest.skip(f"{block}: not run, the block at {terminal.failed} failed first")
    result = terminal.run(block)
    if result.returncode != 0:
        terminal.failed = block
        pytest.fail(
            f"{block} exited {result.returncode}:\n{block.code}\n--- stdout\n"
            f"{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
        )
