"""Notification tests run on both stacks, with webhooks allowed on 127.0.0.1 and a real
receiver there. The API's own relay is paced by ``relay_interval``: an hour by default, so
that tests drive publishing and delivery themselves (with a clock they control)."""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from pamtalk.db.types import utcnow
from pamtalk.notify import delivery, relay
from pamtalk.settings import Settings
from tests.conftest import Actor

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": True})


@pytest.fixture
def relay_interval() -> float:
    return 3600.0


@pytest.fixture(autouse=True)
def _relay_pace(relay_interval: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "INTERVAL_S", relay_interval)


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = orjson.loads(self.body)
        return event


class Receiver:
    """A real HTTP server on 127.0.0.1, in a thread: records each POST, answers with the
    queued ``statuses`` (then 200), and can hold the ``hold_at``-th request unanswered until
    ``release`` is set."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: deque[int] = deque()
        self.always: int | None = None
        self.hold_at: int | None = None
        self.held, self.release = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append(Received(dict(self.headers.items()), body))
                    count = len(receiver.requests)
                    status = receiver.always or (
                        receiver.statuses.popleft() if receiver.statuses else 200
                    )
                if count == receiver.hold_at:
                    receiver.held.set()
                    receiver.release.wait()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, *args: Any) -> None:  # a sender that hung up: fine
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pamtalk"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.thread.start()
    yield found
    found.release.set()
    found.server.shutdown()
    found.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


async def register(
    client: httpx.AsyncClient, actor: Actor, url: str, events: list[str]
) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhooks", json={"url": url, "events": events}, headers=actor.headers
    )
    assert response.status_code == 201, response.text
    hook: dict[str, Any] = response.json()
    return hook


async def drive(app: FastAPI, now: Callable[[], datetime] = utcnow) -> int:
    """Publish every outbox event, then attempt every due delivery (as the relay does)."""
    state = app.state.pamtalk
    await relay.publish_all(state.sessions, now)
    async with delivery.Sender(state.settings) as sender:
        return await delivery.deliver_due(state.sessions, sender, now)


def readme_recipe() -> Callable[[str, str, bytes], dict[str, Any]]:
    """README's ``verify_webhook``, run from the README's own block."""
    text = README.read_text()
    section = text[text.index("## Receiving a webhook") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code, "README: no Python block under 'Receiving a webhook'"
    scope: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), scope)
    verify: Callable[[str, str, bytes], dict[str, Any]] = scope["verify_webhook"]
    return verify
