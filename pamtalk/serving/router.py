"""Which deployed version of a model answers a request: the champion, or for a canary the
challenger for a sticky share of request keys; in shadow mode the challenger scores a copy
instead. Versions pinned by batch jobs are reachable by version only."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Literal

from pamtalk.serving.deployment import Deployment

Role = Literal["champion", "challenger", "shadow", "pinned"]


def bucket(key: str) -> int:
    """0-99, stable for a key across processes and restarts (unlike ``hash``)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


@dataclass
class VersionRouter:
    """The deployments of one model; swapped by assigning a field, which is atomic for the
    event loop: a request holds whatever it picked until it finishes."""

    champion: Deployment | None = None
    challenger: Deployment | None = None
    percent: int = 0
    mode: str = "split"
    # Versions loaded for batch jobs (each pins the champions of when it started).
    pinned: dict[str, Deployment] = field(default_factory=dict)

    def pick(self, key: str | None) -> tuple[Deployment | None, Role, Deployment | None]:
        """(answering deployment, its role, shadow deployment or None)."""
        chosen = bucket(key) < self.percent if key else random.randrange(100) < self.percent
        if self.challenger is None or not chosen:
            return self.champion, "champion", None
        if self.mode == "shadow":
            return self.champion, "champion", self.challenger
        return self.challenger, "challenger", None

    def live(self) -> list[Deployment]:
        """The deployments the aliases route to: the champion, then the challenger."""
        return [d for d in (self.champion, self.challenger) if d is not None]

    def version(self, version: str) -> Deployment | None:
        for deployment in (self.champion, self.challenger):
            if deployment is not None and deployment.version == version:
                return deployment
        return self.pinned.get(version)
