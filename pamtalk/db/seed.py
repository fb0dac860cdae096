"""Demo data: users, farms across Korea, and a year of transactions with seasonality and a
weekly rhythm, written with bulk inserts. Also the ops bootstrap of the admin API key.

Run: ``pamtalk db seed`` (or ``pamtalk init``, which seeds an empty database).
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import ApiKey, DemandDaily, Farm, FarmCrop, Role, Transaction, User
from pamtalk.db.types import utcnow
from pamtalk.domain import CROPS, KST
from pamtalk.security import digest, hash_password_sync, shown_prefix

SeedHook = Callable[[AsyncSession], Awaitable[object]]
DEMO_PASSWORD = "pamtalk-demo"
DEMO_DOMAIN = "pamtalk.local"
ADMIN_EMAIL = f"admin@{DEMO_DOMAIN}"
# The seed's accounts (prod refuses to start while any still has the demo password).
DEMO_EMAIL = re.compile(rf"(admin|analyst\d+|buyer\d+|farmer\d+)@{re.escape(DEMO_DOMAIN)}")
BOOTSTRAP_KEY_NAME = "bootstrap (PAMTALK_ADMIN_API_KEY)"

# Where each region farms what (a simplification of Korea's main producing areas) and its
# rough centre, for plausible coordinates.
REGION_PROFILES: dict[str, tuple[float, tuple[float, float], tuple[str, ...]]] = {
    # region: (share of farms, (lat, lon), crops)
    "jeonnam": (0.15, (34.86, 126.99), ("rice", "onion", "garlic", "napa_cabbage", "sweet_potato")),
    "gyeongbuk": (
        0.15,
        (36.25, 128.66),
        ("apple", "garlic", "korean_melon", "chili_pepper", "peach"),
    ),
    "chungnam": (0.11, (36.52, 126.80), ("rice", "strawberry", "garlic", "tomato", "soybean")),
    "jeonbuk": (0.10, (35.72, 127.15), ("rice", "barley", "watermelon", "chili_pepper", "soybean")),
    "gyeonggi": (0.10, (37.41, 127.26), ("rice", "pear", "cucumber", "lettuce", "mushroom")),
    "gyeongnam": (
        0.10,
        (35.46, 128.21),
        ("garlic", "onion", "persimmon", "strawberry", "zucchini"),
    ),
    "jeju": (0.08, (33.39, 126.55), ("tangerine", "cabbage", "broccoli", "carrot", "radish")),
    "gangwon": (
        0.07,
        (37.75, 128.20),
        ("potato", "napa_cabbage", "radish", "green_onion", "cabbage"),
    ),
    "chungbuk": (
        0.07,
        (36.76, 127.66),
        ("apple", "chili_pepper", "grape", "peach", "sweet_potato"),
    ),
    "sejong": (0.02, (36.56, 127.26), ("pear", "peach", "rice")),
    "incheon": (0.01, (37.45, 126.70), ("rice", "lettuce", "perilla")),
    "daegu": (0.01, (35.87, 128.60), ("apple", "perilla", "spinach")),
    "ulsan": (0.01, (35.54, 129.31), ("pear", "rice", "green_onion")),
    "gwangju": (0.005, (35.16, 126.85), ("lettuce", "spinach", "mushroom")),
    "busan": (0.005, (35.18, 129.08), ("spinach", "green_onion", "tomato")),
    "daejeon": (0.005, (36.35, 127.38), ("lettuce", "cucumber", "mushroom")),
    "seoul": (0.005, (37.57, 126.98), ("lettuce", "perilla", "mushroom")),
}

# Month (1-12) of peak harvest/sales and typical KRW per kg at the farm gate.
CROP_SEASON: dict[str, tuple[int, int]] = {
    "tangerine": (12, 2500),
    "broccoli": (1, 3500),
    "cabbage": (1, 900),
    "carrot": (12, 1600),
    "radish": (11, 800),
    "rice": (10, 2600),
    "barley": (6, 1500),
    "soybean": (11, 5000),
    "napa_cabbage": (11, 800),
    "onion": (6, 1000),
    "garlic": (6, 6000),
    "green_onion": (3, 2500),
    "chili_pepper": (8, 12000),
    "potato": (7, 1800),
    "sweet_potato": (10, 2800),
    "cucumber": (5, 2200),
    "zucchini": (6, 2000),
    "spinach": (2, 3000),
    "lettuce": (4, 4000),
    "tomato": (5, 3000),
    "perilla": (7, 7000),
    "mushroom": (11, 5500),
    "apple": (10, 4500),
    "pear": (9, 4000),
    "grape": (8, 6500),
    "peach": (7, 5500),
    "persimmon": (11, 3000),
    "strawberry": (2, 12000),
    "watermelon": (7, 1800),
    "korean_melon": (5, 5000),
}
# Monday busiest after the weekend, Sunday wholesale markets closed.
WEEKDAY_FACTOR = (1.3, 1.1, 1.0, 1.0, 1.1, 0.9, 0.15)


@dataclass(frozen=True)
class SeedSize:
    farms: int = 300
    buyers: int = 120
    analysts: int = 3
    transactions: int = 60_000
    days: int = 365


async def is_empty(session: AsyncSession) -> bool:
    return not await session.scalar(select(func.count()).select_from(Farm))


async def seed(
    session: AsyncSession,
    size: SeedSize = SeedSize(),
    rng_seed: int = 7,
    today: date | None = None,
    ledger: SeedHook | None = None,
) -> dict[str, int]:
    """Fill an empty database with demo data in one transaction; returns row counts.
    ``ledger`` runs in that transaction after the rows are in (pamtalk.ledger appends the
    transactions to its chain there: this layer cannot import it)."""
    rng = random.Random(rng_seed)
    today = today or utcnow().astimezone(KST).date()
    password_hash = hash_password_sync(DEMO_PASSWORD)  # one hash: Argon2 is slow by design

    users: list[dict[str, Any]] = [
        {"email": ADMIN_EMAIL, "name": "PAM-TALK 관리자", "role": Role.admin},
        *(
            {"email": f"analyst{i}@pamtalk.local", "name": f"분석가 {i}", "role": Role.analyst}
            for i in range(1, size.analysts + 1)
        ),
        *(
            {"email": f"buyer{i}@pamtalk.local", "name": f"구매자 {i}", "role": Role.buyer}
            for i in range(1, size.buyers + 1)
        ),
        *(
            {"email": f"farmer{i}@pamtalk.local", "name": f"농부 {i}", "role": Role.farmer}
            for i in range(1, size.farms + 1)
        ),
    ]
    created = utcnow() - timedelta(days=size.days + 30)
    for user in users:
        user.update(password_hash=password_hash, is_active=True, created_at=created)
    existing = set(await session.scalars(select(User.email)))  # e.g. the bootstrap admin
    users = [user for user in users if user["email"] not in existing]
    await session.execute(insert(User), users)
    ids = {email: id_ for email, id_ in await session.execute(select(User.email, User.id))}
    buyer_ids = [ids[f"buyer{i}@pamtalk.local"] for i in range(1, size.buyers + 1)]

    regions = list(REGION_PROFILES)
    weights = [REGION_PROFILES[r][0] for r in regions]
    farms, farm_crops = [], []
    for i in range(1, size.farms + 1):
        region = rng.choices(regions, weights)[0]
        _, (lat, lon), local = REGION_PROFILES[region]
        crops = sorted(set(rng.sample(local, k=min(len(local), rng.randint(1, 3)))))
        organic = rng.random() < 0.12
        farms.append(
            {
                "owner_id": ids[f"farmer{i}@pamtalk.local"],
                "name": f"{CROPS[crops[0]].name_ko} 농장 {i}",
                "region": region,
                "address": None,
                "latitude": round(lat + rng.gauss(0, 0.15), 5),
                "longitude": round(lon + rng.gauss(0, 0.15), 5),
                "area_m2": int(rng.lognormvariate(math.log(8000), 0.8)),
                "organic": organic,
                "certifications": sorted(
                    {"organic"} if organic else set() | ({"gap"} if rng.random() < 0.3 else set())
                ),
                "practices": _practices(rng, organic),
                "created_at": created,
                "updated_at": created,
            }
        )
        farm_crops.append(crops)
    await session.execute(insert(Farm), farms)
    farm_rows = (await session.execute(select(Farm.id, Farm.region).order_by(Farm.id))).all()
    await session.execute(
        insert(FarmCrop),
        [
            {"farm_id": farm_id, "crop": crop}
            for (farm_id, _), crops in zip(farm_rows, farm_crops, strict=True)
            for crop in crops
        ],
    )

    transactions, demand = _transactions(rng, size, today, farm_rows, farm_crops, buyer_ids)
    for start in range(0, len(transactions), 5000):
        await session.execute(insert(Transaction), transactions[start : start + 5000])
    await session.execute(
        insert(DemandDaily),
        [
            {"crop": c, "region": r, "day": d, "quantity_g": q, "value_krw": v, "transactions": n}
            for (c, r, d), (q, v, n) in demand.items()
        ],
    )
    if ledger is not None:
        await ledger(session)
    await session.commit()
    return {
        "users": len(users),
        "farms": len(farms),
        "transactions": len(transactions),
        "demand_days": len(demand),
    }


def _practices(rng: random.Random, organic: bool) -> dict[str, Any]:
    practices = {
        "nitrogen_kg_per_ha": round(rng.uniform(0, 40) if organic else rng.uniform(60, 250), 1),
        "diesel_l_per_year": round(rng.lognormvariate(math.log(600), 0.6), 1),
        "electricity_kwh_per_year": round(rng.lognormvariate(math.log(4000), 0.9), 1),
        "renewable_share": round(rng.betavariate(1.2, 5), 2),
        "water_m3_per_year": round(rng.lognormvariate(math.log(3000), 0.7), 1),
        "cover_crops": rng.random() < (0.6 if organic else 0.25),
        "crop_rotation": rng.random() < 0.5,
        "workers": rng.randint(1, 12),
        "fair_wage": rng.random() < 0.8,
        "safety_training": rng.random() < 0.6,
        "record_keeping": rng.random() < 0.7,
    }
    # Real profiles are incomplete: drop some answers.
    return {k: v for k, v in practices.items() if rng.random() > 0.15}


def _transactions(
    rng: random.Random,
    size: SeedSize,
    today: date,
    farm_rows: Sequence[Any],
    farm_crops: list[list[str]],
    buyer_ids: list[int],
) -> tuple[list[dict[str, Any]], dict[tuple[str, str, date], list[int]]]:
    days = [today - timedelta(days=d) for d in range(size.days, 0, -1)]
    offers = [
        (farm_id, region, crop)
        for (farm_id, region), crops in zip(farm_rows, farm_crops, strict=True)
        for crop in crops
    ]
    # Seasonality: cosine around each crop's peak month; off-season sales do not vanish.
    by_month = {
        month: list(
            accumulate(
                0.15 + math.cos((month - CROP_SEASON[crop][0]) / 12 * 2 * math.pi) + 1.0
                for _, _, crop in offers
            )
        )
        for month in range(1, 13)
    }
    day_weights = list(accumulate(WEEKDAY_FACTOR[d.weekday()] for d in days))
    transactions = []
    demand: dict[tuple[str, str, date], list[int]] = defaultdict(lambda: [0, 0, 0])
    for day in rng.choices(days, cum_weights=day_weights, k=size.transactions):
        farm_id, region, crop = rng.choices(offers, cum_weights=by_month[day.month])[0]
        peak, base_price = CROP_SEASON[crop]
        in_season = math.cos((day.month - peak) / 12 * 2 * math.pi)
        price = max(100, round(base_price * (1 - 0.2 * in_season) * rng.uniform(0.85, 1.15)))
        quantity_g = max(1000, round(rng.lognormvariate(math.log(150), 1.0) * 1000))
        total = (quantity_g * price + 500) // 1000
        at = datetime.combine(day, time(rng.randint(5, 19), rng.randint(0, 59)), KST)
        transactions.append(
            {
                "farm_id": farm_id,
                "buyer_id": rng.choice(buyer_ids),
                "crop": crop,
                "region": region,
                "quantity_g": quantity_g,
                "unit_price_krw": price,
                "total_krw": total,
                "created_at": at.astimezone(UTC),
            }
        )
        agg = demand[(crop, region, day)]
        agg[0] += quantity_g
        agg[1] += total
        agg[2] += 1
    return transactions, demand


@dataclass(frozen=True)
class Rotation:
    """What registering PAMTALK_ADMIN_API_KEY did: ``added`` its row; ``revoked`` the hashes of
    the bootstrap keys it replaced (callers evict them from the credential cache); ``usable``
    is False when this very key was revoked before (rotated out or revoked by an admin): it
    stays revoked, and nothing else is revoked for it."""

    added: bool
    revoked: list[str]
    usable: bool = True


async def rotate_admin_api_key(session: AsyncSession, key: str) -> Rotation:
    """Make ``key`` the admin bootstrap key (PAMTALK_ADMIN_API_KEY) and revoke every other
    bootstrap key, so that changing the setting and restarting rotates it. Safe to run from
    several processes at once: a concurrent insert of the same key counts as present."""
    key_hash = digest(key)
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
    if row is not None and row.revoked_at is not None:
        return Rotation(added=False, revoked=[], usable=False)
    added = False
    if row is None:
        try:
            admin = await session.scalar(select(User).where(User.email == ADMIN_EMAIL))
            if admin is None:
                admin = User(email=ADMIN_EMAIL, name="PAM-TALK 관리자", role=Role.admin)
                session.add(admin)
                await session.flush()
            session.add(
                ApiKey(
                    user_id=admin.id,
                    name=BOOTSTRAP_KEY_NAME,
                    prefix=shown_prefix(key),
                    key_hash=key_hash,
                    bootstrap=True,
                )
            )
            await session.commit()
            added = True
        except IntegrityError:  # another worker registered it (or the admin) first
            await session.rollback()
            return await rotate_admin_api_key(session, key)
    revoked = list(
        await session.scalars(
            update(ApiKey)
            .where(
                ApiKey.bootstrap.is_(True),
                ApiKey.revoked_at.is_(None),
                ApiKey.key_hash != key_hash,
            )
            .values(revoked_at=utcnow())
            .returning(ApiKey.key_hash)
        )
    )
    await session.commit()
    return Rotation(added=added, revoked=revoked)


async def ensure_admin_api_key(session: AsyncSession, key: str) -> bool:
    """Make ``key`` the admin API key (PAMTALK_ADMIN_API_KEY), revoking the bootstrap key it
    replaces. Returns True if added."""
    return (await rotate_admin_api_key(session, key)).added


async def demo_logins(session: AsyncSession) -> list[str]:
    """The seed's accounts that are active and still log in with the demo password. The seed
    gives them all one Argon2 hash, so this verifies once per distinct hash, not per user."""
    rows = await session.execute(
        select(User.email, User.password_hash).where(
            User.email.like(f"%@{DEMO_DOMAIN}"),
            User.is_active.is_(True),
            User.password_hash.is_not(None),
        )
    )
    by_hash: dict[str, list[str]] = defaultdict(list)
    for email, password_hash in rows:
        if password_hash and DEMO_EMAIL.fullmatch(email):
            by_hash[password_hash].append(email)
    found: list[str] = []
    for password_hash, emails in by_hash.items():
        if await asyncio.to_thread(_is_demo_password, password_hash):
            found += emails
    return sorted(found)


def _is_demo_password(password_hash: str) -> bool:
    try:  # argon2 reads the cost parameters from the hash itself
        return PasswordHasher().verify(password_hash, DEMO_PASSWORD)
    except (VerificationError, InvalidHashError):
        return False
