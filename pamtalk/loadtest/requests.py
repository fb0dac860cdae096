"""The seed's mix, request by request: how each endpoint's next request is drawn, over the
load test's fixtures. The Locust users (``locustfile.py``) and ``bench/cpu.py`` share it;
nothing here imports Locust, which monkey-patches the standard library as it is imported."""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from pamtalk.loadtest.prepare import DEFAULT_PRICE_KRW, Fixtures
from pamtalk.loadtest.scenarios import MIX

HORIZONS = (7, 14, 28)


@dataclass(frozen=True)
class Request:
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _query(path: str, params: dict[str, Any]) -> str:
    return f"{path}?{urlencode(params)}"


class Requests:
    """One user's requests: its own random draws, and ``label`` in what it writes (farm
    names, Idempotency-Keys) so that every user's writes are its own."""

    def __init__(self, data: Fixtures, rng: random.Random, label: str) -> None:
        self.data, self.rng, self.label = data, rng, label
        self.sent = itertools.count(1)
        self.regions = sorted({farm["region"] for farm in data.farms})
        self.crops = sorted({crop for farm in data.farms for crop in farm["crops"]})
        self.series = sorted({(c, farm["region"]) for farm in data.farms for c in farm["crops"]})
        prices = data.prices.values()
        self.typical_price = int(statistics.median(prices)) if prices else DEFAULT_PRICE_KRW

    def build(self, endpoint: str) -> Request:
        """The next request of ``endpoint`` (a name of the mix, ``"GET /v1/farms"``)."""
        return BUILDERS[endpoint](self)

    # Reads

    def dashboard(self) -> Request:
        return Request("/v1/dashboard")

    def farm_list(self) -> Request:
        """A buyer browsing: the first page, by region or by crop."""
        params: dict[str, Any] = {"limit": 20}
        pick = self.rng.random()
        if pick < 0.4:
            params["region"] = self.rng.choice(self.regions)
        elif pick < 0.7:
            params["crop"] = self.rng.choice(self.crops)
        return Request(_query("/v1/farms", params))

    def farm(self) -> Request:
        return Request(f"/v1/farms/{self.rng.choice(self.data.farms)['id']}")

    def transaction_list(self) -> Request:
        """A buyer's own purchases, newest first, sometimes of one crop."""
        params: dict[str, Any] = {"limit": 20}
        if self.rng.random() < 0.3:
            params["crop"] = self.rng.choice(self.crops)
        return Request(_query("/v1/transactions", params))

    # Writes

    def new_farm(self) -> Request:
        """A farmer registers a farm like one of the region's (coordinates nearby, some of
        its crops, its practices)."""
        like = self.rng.choice(self.data.farms)
        crops = self.rng.sample(like["crops"], self.rng.randint(1, len(like["crops"])))
        body: dict[str, Any] = {
            "name": f"부하시험 농장 {self.label}-{next(self.sent)}",
            "region": like["region"],
            "area_m2": max(100, int(like["area_m2"] * self.rng.uniform(0.5, 1.5))),
            "crops": crops,
            "organic": like["organic"],
            "certifications": like["certifications"],
            "practices": like["practices"],
        }
        if like["latitude"] is not None and like["longitude"] is not None:
            body["latitude"] = min(38.7, max(33.0, like["latitude"] + self.rng.gauss(0, 0.05)))
            body["longitude"] = min(132.0, max(124.5, like["longitude"] + self.rng.gauss(0, 0.05)))
        return Request("/v1/farms", body)

    def new_transaction(self) -> Request:
        """A buyer's purchase at about the going price, with a fresh Idempotency-Key."""
        farm = self.rng.choice(self.data.farms)
        crop = self.rng.choice(farm["crops"])
        price = self.data.prices.get(crop, self.typical_price) * self.rng.uniform(0.8, 1.25)
        body = {
            "farm_id": farm["id"],
            "crop": crop,
            "quantity_kg": f"{self.rng.uniform(1, 300):.1f}",
            "unit_price_krw": max(1, round(price)),
        }
        key = f"loadtest-{self.label}-{next(self.sent)}"
        return Request("/v1/transactions", body, {"Idempotency-Key": key})

    # AI

    def demand(self) -> Request:
        crop, region = self.rng.choice(self.series)
        body = {"crop": crop, "region": region, "horizon_days": self.rng.choice(HORIZONS)}
        return Request("/v1/predictions/demand", body)

    def esg(self) -> Request:
        return Request("/v1/esg/score", {"farm_id": self.rng.choice(self.data.farms)["id"]})


BUILDERS: dict[str, Callable[[Requests], Request]] = {
    "GET /v1/dashboard": Requests.dashboard,
    "GET /v1/farms": Requests.farm_list,
    "GET /v1/farms/{id}": Requests.farm,
    "GET /v1/transactions": Requests.transaction_list,
    "POST /v1/farms": Requests.new_farm,
    "POST /v1/transactions": Requests.new_transaction,
    "POST /v1/predictions/demand": Requests.demand,
    "POST /v1/esg/score": Requests.esg,
}
assert set(BUILDERS) == {e.name for e in MIX}
