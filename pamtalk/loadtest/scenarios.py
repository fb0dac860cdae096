"""The seed's three load scenarios, its request mix, and how its users become Locust users.

Users and load. The seed counts *users* (1,000 / 5,000 / 10,000) and a target request rate
(20 / 100 / 500 RPS): each of its users sends one request every ``users / rps`` seconds
(50 s, 50 s, 20 s). Simulating 10,000 users as 10,000 Locust greenlets, each with its own
keep-alive connection, would measure the load generator on a 2-core box, not the server.
So ``greenlets`` Locust users (``FastHttpUser``, one connection each; by default one per
request per second, at least 10 and at most ``users``) each stand for ``users / greenlets``
of the seed's users and keeps ``rps / greenlets`` requests per second:
``greenlets x rps / greenlets = users x rps / users = rps``. The ramp adds greenlets (so users
and RPS grow together); the report gives both counts.

Arrivals. Each Locust user keeps its own schedule of request start times (a ``wait_time`` that
waits for the next due time; a request that ends late starts the next one at once, without
catching up). ``paced`` (default): a fixed gap, from a random phase, so the rate is exact and
the arrivals spread over each second. ``poisson``: exponential gaps, so the independent users
add up to a Poisson stream of ``rps`` (burstier; its count over a short steady phase varies by
a few percent, which the >= 95 % rate check may then catch at low rates). Not Locust's
``constant_throughput``: it paces from each user's spawn, and the load shape spawns users on
its 1 s ticks, so every user fired in the same few milliseconds of each second (measured:
20 req/s arriving as one burst of 20 a second, p50 52 ms instead of 7 ms).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Curve = Literal["linear", "exponential"]
Arrivals = Literal["poisson", "paced"]
Kind = Literal["read", "write", "ai"]
Role = Literal["buyer", "farmer"]

MIN_GREENLETS = 10
REQUESTS_PER_GREENLET = 1.0  # default pace of one Locust user, requests per second


@dataclass(frozen=True)
class Scenario:
    name: str
    users: int
    rps: float
    duration: float  # seconds, ramp included
    ramp: float  # seconds to reach full load
    curve: Curve
    about: str


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("basic", 1_000, 20, 300, 60, "linear", "everyday traffic (phase 1: --rps 50)"),
        Scenario(
            "peak", 5_000, 100, 600, 120, "exponential", "the daily peak, grown exponentially"
        ),
        Scenario("spike", 10_000, 500, 300, 30, "linear", "a sudden spike: all users within 30 s"),
    )
}


@dataclass(frozen=True)
class Endpoint:
    """One request of the mix; ``weight`` is its share in percent."""

    name: str  # method and route template, as reported
    kind: Kind
    weight: int
    role: Role  # whose API key sends it
    status: int  # the expected answer; anything else is a failure


# The seed's mix: 70 % reads, 20 % writes, 10 % AI. Within each, shares follow what the
# users do: buyers browse farms and record purchases far more often than farmers register
# farms; demand forecasts (farmers planning) a little more often than ESG checks (buyers
# vetting suppliers).
MIX: tuple[Endpoint, ...] = (
    Endpoint("GET /v1/dashboard", "read", 15, "farmer", 200),
    Endpoint("GET /v1/farms", "read", 20, "buyer", 200),
    Endpoint("GET /v1/farms/{id}", "read", 20, "buyer", 200),
    Endpoint("GET /v1/transactions", "read", 15, "buyer", 200),
    Endpoint("POST /v1/farms", "write", 5, "farmer", 201),
    Endpoint("POST /v1/transactions", "write", 15, "buyer", 201),
    Endpoint("POST /v1/predictions/demand", "ai", 6, "farmer", 200),
    Endpoint("POST /v1/esg/score", "ai", 4, "buyer", 200),
)
assert sum(e.weight for e in MIX) == 100


def schedule(mix: tuple[Endpoint, ...] = MIX) -> list[int]:
    """Indexes into ``mix`` for one cycle of 100 requests, spread evenly (smooth weighted
    round robin): every window of 100 consecutive requests has the exact mix, and an
    endpoint of weight w comes back every 100 / w requests, so a short run hits them all."""
    total = sum(e.weight for e in mix)
    current = [0] * len(mix)
    order = []
    for _ in range(total):
        for i, endpoint in enumerate(mix):
            current[i] += endpoint.weight
        best = max(range(len(mix)), key=current.__getitem__)
        current[best] -= total
        order.append(best)
    return order


@dataclass(frozen=True)
class Load:
    """A scenario with its numbers settled: what the Locust shape and users follow."""

    scenario: str
    users: int
    rps: float
    duration: float
    ramp: float
    curve: Curve
    greenlets: int
    arrivals: Arrivals = "paced"

    @classmethod
    def plan(
        cls,
        scenario: str,
        *,
        users: int | None = None,
        rps: float | None = None,
        duration: float | None = None,
        ramp: float | None = None,
        greenlets: int | None = None,
        arrivals: str = "paced",
    ) -> Load:
        """The scenario's defaults, overridden; raises ValueError on impossible numbers."""
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; scenarios: {', '.join(SCENARIOS)}")
        base = SCENARIOS[scenario]
        users = base.users if users is None else users
        rps = base.rps if rps is None else rps
        if ramp is None:
            # The scenario's ramp keeps its share of a shorter or longer run (basic: 60 s of
            # 300, so 4 s of --duration 20), as its shape is the point, not its seconds.
            ramp = base.ramp if duration is None else base.ramp * duration / base.duration
        duration = base.duration if duration is None else duration
        if users < 1:
            raise ValueError("users must be at least 1")
        if not rps > 0:
            raise ValueError("rps must be positive")
        if not 0 <= ramp < duration:
            raise ValueError(
                f"the ramp (--ramp {ramp:g} s) must be shorter than the duration "
                f"(--duration {duration:g} s)"
            )
        if duration - ramp < 1:
            raise ValueError(
                f"leave at least 1 s of steady load after the ramp: --ramp {ramp:g} s of "
                f"--duration {duration:g} s"
            )
        if greenlets is None:
            greenlets = min(users, max(MIN_GREENLETS, math.ceil(rps / REQUESTS_PER_GREENLET)))
        if not 1 <= greenlets <= users:
            raise ValueError(f"greenlets must be between 1 and users ({users})")
        if arrivals not in ("poisson", "paced"):
            raise ValueError(f"arrivals must be poisson or paced, got {arrivals!r}")
        kind: Arrivals = "poisson" if arrivals == "poisson" else "paced"
        return cls(scenario, users, rps, duration, ramp, base.curve, greenlets, kind)

    @property
    def rate_per_greenlet(self) -> float:
        """Requests per second one Locust user keeps, on average."""
        return self.rps / self.greenlets

    @property
    def users_per_greenlet(self) -> float:
        return self.users / self.greenlets

    @property
    def seconds_between_requests(self) -> float:
        """How often each of the seed's users sends a request at full load."""
        return self.users / self.rps

    def greenlets_at(self, t: float) -> int:
        """Locust users running ``t`` seconds into the run: grows over the ramp (linearly,
        or exponentially from 1), then holds."""
        if self.ramp <= 0 or t >= self.ramp:
            return self.greenlets
        share = max(t, 0.0) / self.ramp
        if self.curve == "exponential":
            return max(1, round(math.pow(self.greenlets, share)))
        return max(1, math.ceil(self.greenlets * share))

    def users_at(self, t: float) -> int:
        return min(self.users, round(self.greenlets_at(t) * self.users_per_greenlet))

    def target_rps_at(self, t: float) -> float:
        return self.greenlets_at(t) * self.rate_per_greenlet

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "rate_per_greenlet": round(self.rate_per_greenlet, 4),
            "users_per_greenlet": round(self.users_per_greenlet, 2),
            "seconds_between_requests_per_user": round(self.seconds_between_requests, 2),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Load:
        return cls(
            scenario=data["scenario"],
            users=int(data["users"]),
            rps=float(data["rps"]),
            duration=float(data["duration"]),
            ramp=float(data["ramp"]),
            curve=data["curve"],
            greenlets=int(data["greenlets"]),
            arrivals=data.get("arrivals", "paced"),
        )
