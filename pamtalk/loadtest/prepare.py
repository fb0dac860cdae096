"""Before the load: credentials and realistic payload data, read from the target's own API.

* An API key per identity: ``buyer1..N`` and ``farmer1..N`` of the demo data log in
  (``POST /v1/auth/login``) and create a key (``POST /v1/auth/api-keys``) on the same
  connection, so that it works without Redis on several workers too (a session lives in
  the worker that issued it then). API keys are what apps use; they are revoked at the end.
* The farms (``GET /v1/farms``, every page): ids, regions, crops, coordinates and practices,
  from which the load draws farm ids, (crop, region) pairs and new farms' profiles.
* Prices: the median unit price per crop of recent transactions, as ``analyst1`` sees them.

Plain ``http.client``: no third-party client, and nothing of gevent's in this process.
"""

from __future__ import annotations

import http.client
import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

FARM_FIELDS = (
    "id",
    "region",
    "crops",
    "latitude",
    "longitude",
    "area_m2",
    "organic",
    "certifications",
    "practices",
)
MAX_FARMS = 5_000
PRICE_PAGES = 5  # of 200 transactions
DEFAULT_PRICE_KRW = 2_000
KEY_NAME = "pamtalk loadtest"


class SetupError(Exception):
    """The target cannot be load-tested as it is (down, no demo users, no farms)."""


@dataclass(frozen=True)
class Key:
    id: int
    key: str


@dataclass(frozen=True)
class Fixtures:
    buyers: list[Key]
    farmers: list[Key]
    farms: list[dict[str, Any]]
    prices: dict[str, int]  # crop -> KRW per kg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fixtures:
        return cls(
            buyers=[Key(**k) for k in data["buyers"]],
            farmers=[Key(**k) for k in data["farmers"]],
            farms=list(data["farms"]),
            prices={str(k): int(v) for k, v in data["prices"].items()},
        )


class Connection:
    """One keep-alive connection to the target, JSON in and out."""

    def __init__(self, target: str, timeout: float = 30.0) -> None:
        url = urlsplit(target)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SetupError(f"the target must be an http(s) URL, got {target!r}")
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self._conn = kind(url.hostname, url.port, timeout=timeout)
        self._base = url.path.rstrip("/")
        self._target = target

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        sent = {"Accept": "application/json", **(headers or {})}
        if payload is not None:
            sent["Content-Type"] = "application/json"
        query = f"?{urlencode(params)}" if params else ""
        for attempt in (1, 2):
            try:
                self._conn.request(method, f"{self._base}{path}{query}", body=payload, headers=sent)
                response = self._conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                # The server closed the idle keep-alive connection: once more on a new one.
                self._conn.close()
                if attempt == 2:
                    raise SetupError(f"cannot reach {self._target}: {exc}") from exc
            except OSError as exc:
                raise SetupError(f"cannot reach {self._target}: {exc}") from exc
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")[:300]
        return response.status, data

    def close(self) -> None:
        self._conn.close()


def _expect(what: str, status: int, data: Any, expected: int = 200) -> Any:
    if status != expected:
        raise SetupError(f"{what}: HTTP {status} {json.dumps(data, ensure_ascii=False)[:300]}")
    return data


def login(conn: Connection, email: str, password: str) -> str:
    status, data = conn.call("POST", "/v1/auth/login", {"email": email, "password": password})
    token: str = _expect(f"log in as {email}", status, data)["token"]
    return token


def api_key(target: str, email: str, password: str) -> Key:
    conn = Connection(target)
    try:
        bearer = {"Authorization": f"Bearer {login(conn, email, password)}"}
        status, data = conn.call("POST", "/v1/auth/api-keys", {"name": KEY_NAME}, bearer)
        created = _expect(f"create an API key for {email}", status, data, 201)
        conn.call("POST", "/v1/auth/logout", headers=bearer)
        return Key(id=int(created["id"]), key=str(created["key"]))
    finally:
        conn.close()


def revoke(target: str, keys: list[Key]) -> None:
    """Revokes the run's keys; best effort (the server may be gone)."""
    try:
        conn = Connection(target, timeout=10)
    except SetupError:
        return
    try:
        for key in keys:
            conn.call("DELETE", f"/v1/auth/api-keys/{key.id}", headers={"X-API-Key": key.key})
    except SetupError:
        pass
    finally:
        conn.close()


def farms(conn: Connection, key: Key) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200}
    while len(found) < MAX_FARMS:
        status, page = conn.call("GET", "/v1/farms", headers={"X-API-Key": key.key}, params=params)
        page = _expect("list farms", status, page)
        found += [{f: farm.get(f) for f in FARM_FIELDS} for farm in page["items"] if farm["crops"]]
        if not page["next_cursor"]:
            break
        params = {"limit": 200, "cursor": page["next_cursor"]}
    return found


def prices(conn: Connection, password: str) -> dict[str, int]:
    """Median unit price per crop of the newest transactions (analyst1 sees them all)."""
    try:
        bearer = {"Authorization": f"Bearer {login(conn, 'analyst1@pamtalk.local', password)}"}
    except SetupError:
        return {}
    seen: dict[str, list[int]] = defaultdict(list)
    params: dict[str, Any] = {"limit": 200}
    for _ in range(PRICE_PAGES):
        status, page = conn.call("GET", "/v1/transactions", headers=bearer, params=params)
        if status != 200:
            break
        for tx in page["items"]:
            seen[tx["crop"]].append(int(tx["unit_price_krw"]))
        if not page["next_cursor"]:
            break
        params = {"limit": 200, "cursor": page["next_cursor"]}
    conn.call("POST", "/v1/auth/logout", headers=bearer)
    return {crop: int(statistics.median(values)) for crop, values in seen.items()}


def fixtures(
    target: str, identities: int, password: str, say: Callable[[str], None] = print
) -> Fixtures:
    conn = Connection(target)
    made: list[Key] = []  # revoked again if the rest fails
    try:
        status, data = conn.call("GET", "/readyz")
        _expect(f"{target}/readyz", status, data)
        say(f"logging in {identities} buyers and {identities} farmers, making API keys ...")
        for role in ("buyer", "farmer"):
            for i in range(1, identities + 1):
                made.append(api_key(target, f"{role}{i}@pamtalk.local", password))
        buyers, farmers = made[:identities], made[identities:]
        catalog = farms(conn, buyers[0])
        if not catalog:
            raise SetupError(f"{target} has no active farms with crops: seed it (pamtalk db seed)")
        found = prices(conn, password)
    except BaseException:
        revoke(target, made)
        raise
    finally:
        conn.close()
    regions = len({farm["region"] for farm in catalog})
    say(f"{len(catalog)} farms in {regions} regions; prices of {len(found)} crops")
    return Fixtures(buyers, farmers, catalog, found)
