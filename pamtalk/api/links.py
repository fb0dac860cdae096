"""OpenAPI links: how the id a create answers with feeds the operations on that resource.
Clients (and schemathesis' stateful phase, tests/test_live_server.py) follow them."""

from __future__ import annotations

import re
from typing import Any


def to(path: str, parameter: str, *methods: str, source: str = "$response.body#/id") -> Any:
    """A response's ``links``: ``source`` as ``parameter`` of ``path`` for each method."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    name = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")  # link names are [A-Za-z0-9._-]
    return {
        f"{method}_{name}": {
            "operationRef": f"#/paths/{pointer}/{method}",
            "parameters": {parameter: source},
        }
        for method in methods
    }
