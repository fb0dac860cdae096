"""Farms: create, read, update, soft-delete, and a cached, filtered, cursor-paginated list.
Each caller sees a farm as farm_view allows (private fields for the owner and staff)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.api import farm_view, links, pagination
from pamtalk.api.auth import Principal
from pamtalk.api.deps import (
    CacheDep,
    CurrentUser,
    DbDep,
    FarmWriter,
    PathId,
    SettingsDep,
    WriteDbDep,
)
from pamtalk.api.responses import JSONResponse
from pamtalk.api.schemas.common import CropSlug, QueryId, RegionSlug
from pamtalk.api.schemas.farms import FarmCreate, FarmPage, FarmPublic, FarmUpdate
from pamtalk.cache import FARMS_NS, cached, generation, invalidate
from pamtalk.db.models import Farm, FarmCrop, FarmStatus, Role, User
from pamtalk.errors import Forbidden, InvalidInput, NotFound
from pamtalk.notify import outbox

router = APIRouter(prefix="/v1/farms", tags=["farms"])

NULLABLE = {"address", "latitude", "longitude"}


async def _changed(cache: CacheDep) -> None:
    # The farm list reads its writes; the dashboard is an aggregate that may lag its 60 s
    # TTL (as it does for transactions): invalidating it on every registration emptied it
    # under write load (the spike scenario: 20 % hits).
    await invalidate(cache, FARMS_NS)


async def _get_live(db: AsyncSession, farm_id: int) -> Farm:
    farm = await db.get(Farm, farm_id)
    if farm is None or farm.status == FarmStatus.deleted:
        raise NotFound(f"farm {farm_id} not found")
    return farm


def _check_owner(farm: Farm, user: Principal) -> None:
    if user.role != Role.admin and farm.owner_id != user.id:
        raise Forbidden("farmers can change only their own farms")


def _shown(farm: Farm, viewer: Principal) -> JSONResponse:
    full = FarmPublic.model_validate(farm).model_dump(mode="json")
    return JSONResponse(farm_view.for_viewer(full, viewer))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FarmPublic,
    responses={
        201: {"links": links.to("/v1/farms/{farm_id}", "farm_id", "get", "patch", "delete")}
    },
)
async def create_farm(body: FarmCreate, user: FarmWriter, db: WriteDbDep, cache: CacheDep) -> Farm:
    """Register a farm: farmers for themselves, admins for a farmer (``owner_id``)."""
    owner_id = user.id
    if body.owner_id is not None and body.owner_id != user.id:
        if user.role != Role.admin:
            raise Forbidden("only an admin can create a farm for another user")
        owner = await db.get(User, body.owner_id)
        if owner is None or owner.role != Role.farmer:
            raise InvalidInput(f"owner_id {body.owner_id} is not a farmer")
        owner_id = owner.id
    data = body.model_dump(exclude={"crops", "practices", "owner_id"})
    farm = Farm(
        **data,
        owner_id=owner_id,
        practices=body.practices.model_dump(exclude_none=True),
        crop_rows=[FarmCrop(crop=c) for c in body.crops],
    )
    db.add(farm)
    await db.commit()
    await _changed(cache)
    return farm


@router.get("", response_model=FarmPage)
async def list_farms(
    db: DbDep,
    cache: CacheDep,
    settings: SettingsDep,
    pages: pagination.PagesDep,
    user: CurrentUser,
    region: Annotated[RegionSlug | None, Query()] = None,
    crop: Annotated[CropSlug | None, Query()] = None,
    farm_status: Annotated[FarmStatus, Query(alias="status")] = FarmStatus.active,
    organic: bool | None = None,
    owner_id: Annotated[QueryId | None, Query()] = None,
    limit: pagination.Limit = 50,
    cursor: pagination.Cursor = None,
) -> Response:
    """Farms in id order. Cached for 300 s; any farm write makes the next read fresh. Follow
    ``next_cursor`` with the same filters (a cursor used with other filters is a 400).
    Other people's farms are in their public view unless you are an admin or analyst."""
    if farm_status == FarmStatus.deleted:
        raise InvalidInput("deleted farms are not listed")
    filters = {
        "region": region,
        "crop": crop,
        "status": farm_status,
        "organic": organic,
        "owner_id": owner_id,
    }
    after = pages.decode(cursor, (pagination.row_id,), filters=filters)[0] if cursor else 0

    async def page() -> dict[str, object]:
        query = select(Farm).where(Farm.status == farm_status, Farm.id > after)
        if region:
            query = query.where(Farm.region == region)
        if crop:
            query = query.where(Farm.id.in_(select(FarmCrop.farm_id).where(FarmCrop.crop == crop)))
        if organic is not None:
            query = query.where(Farm.organic.is_(organic))
        if owner_id is not None:
            query = query.where(Farm.owner_id == owner_id)
        rows = list(await db.scalars(query.order_by(Farm.id).limit(limit + 1)))
        more = len(rows) > limit
        items = [FarmPublic.model_validate(f).model_dump(mode="json") for f in rows[:limit]]
        return {
            "items": items,
            "next_cursor": pages.encode(rows[limit - 1].id, filters=filters) if more else None,
        }

    gen = await generation(cache, FARMS_NS)
    key = f"list:{gen}:{region}:{crop}:{farm_status}:{organic}:{owner_id}:{after}:{limit}"
    # The cache holds full farms; the caller's view is cut from it after.
    full = await cached(cache, FARMS_NS, key, settings.farm_list_ttl, page)
    return JSONResponse(farm_view.page_for_viewer(full, user))


@router.get("/{farm_id}", response_model=FarmPublic)
async def get_farm(farm_id: PathId, db: DbDep, user: CurrentUser) -> JSONResponse:
    """One farm (deleted farms are not found); its public view unless it is yours or you
    are an admin or analyst."""
    return _shown(await _get_live(db, farm_id), user)


@router.patch("/{farm_id}", response_model=FarmPublic)
async def update_farm(
    farm_id: PathId, body: FarmUpdate, user: FarmWriter, db: WriteDbDep, cache: CacheDep
) -> Farm:
    """Change a farm (its owner or an admin): only the fields sent; ``practices`` merge and
    a null clears one practice. Only an admin changes ``status`` (suspends or reinstates)."""
    farm = await _get_live(db, farm_id)
    _check_owner(farm, user)
    changes = body.model_dump(exclude_unset=True, exclude={"crops", "practices"})
    was = farm.status
    if "status" in changes and changes["status"] != was and user.role != Role.admin:
        raise Forbidden("only an admin changes a farm's status (suspends or reinstates it)")
    for field, value in changes.items():
        if value is None and field not in NULLABLE:
            raise InvalidInput(f"{field} cannot be null")
        setattr(farm, field, value)
    if body.crops is not None:
        farm.crop_rows = [FarmCrop(crop=c) for c in body.crops]
    if body.practices is not None:
        # Practice data is merged, and a null clears a value.
        merged = {**farm.practices, **body.practices.model_dump(exclude_unset=True)}
        farm.practices = {k: v for k, v in merged.items() if v is not None}
    if farm.status == FarmStatus.suspended and was != FarmStatus.suspended:  # owner told
        suspended = {"farm_id": farm.id, "name": farm.name, "by": user.id}
        outbox.add(db, "farm.suspended", suspended, users=(farm.owner_id,))
    await db.commit()
    await db.refresh(farm)
    await _changed(cache)
    return farm


@router.delete("/{farm_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_farm(
    farm_id: PathId, user: FarmWriter, db: WriteDbDep, cache: CacheDep
) -> Response:
    """Soft delete: the farm leaves lists and lookups; its transactions keep their history."""
    farm = await _get_live(db, farm_id)
    _check_owner(farm, user)
    farm.status = FarmStatus.deleted
    await db.commit()
    await _changed(cache)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
