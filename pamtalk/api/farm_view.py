"""Who sees a farm's private fields: its exact location (address, latitude, longitude) and its
labour practices are the owner's, the admins' and the analysts' to see; everyone else gets
the public view (region, crops, size, certifications, the other practices), marked
``"visibility": "public"``.

Applied to the serialised farm, after any cache: the farm list caches the full page once
and each caller's view is cut from it, so one role's view never reaches another.
"""

from __future__ import annotations

from typing import Any

import orjson

from pamtalk.api.auth import Principal
from pamtalk.db.models import Role
from pamtalk.models.esg.methodology import SOCIAL_PRACTICE_KEYS

PRIVATE_FIELDS = ("address", "latitude", "longitude")
# The social pillar's inputs: about the people who work on the farm.
LABOUR_PRACTICES = frozenset(SOCIAL_PRACTICE_KEYS)
STAFF = (Role.admin, Role.analyst)


def sees_private(viewer: Principal, owner_id: int) -> bool:
    return viewer.role in STAFF or viewer.id == owner_id


def public(farm: dict[str, Any]) -> dict[str, Any]:
    """The public view of a serialised farm (a new dict)."""
    shown = {**farm, **dict.fromkeys(PRIVATE_FIELDS), "visibility": "public"}
    practices = farm.get("practices") or {}
    shown["practices"] = {k: v for k, v in practices.items() if k not in LABOUR_PRACTICES}
    return shown


def for_viewer(farm: dict[str, Any], viewer: Principal) -> dict[str, Any]:
    return farm if sees_private(viewer, farm["owner_id"]) else public(farm)


def page_for_viewer(page: bytes, viewer: Principal) -> bytes:
    """A cached page of full farms (``{"items": [...], ...}``) as ``viewer`` may see it;
    staff get the cached bytes untouched."""
    if viewer.role in STAFF:
        return page
    data = orjson.loads(page)
    data["items"] = [for_viewer(farm, viewer) for farm in data["items"]]
    return orjson.dumps(data)
