"""Background jobs (``/v1/jobs``): the nightly scoring (admins) and single heavy predictions
(anyone signed in), on the Celery workers when a broker is configured, else in this process.
Results land in demand_forecasts / esg_assessments under the job's id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from pamtalk.api.deps import CurrentUser, DbDep, PathId, StateDep
from pamtalk.api.schemas.jobs import DemandJob, EsgJob, JobCreate, JobPublic, NightlyJob
from pamtalk.batching import jobs
from pamtalk.db.models import BatchJob, Farm, FarmStatus, Role
from pamtalk.db.types import utcnow
from pamtalk.domain import KST
from pamtalk.errors import Forbidden, NotFound

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic)
async def create_job(
    body: JobCreate, user: CurrentUser, db: DbDep, state: StateDep, response: Response
) -> dict[str, Any]:
    """Queue a heavy prediction (``{"kind": "demand", "crop", "region"}`` or ``{"kind":
    "esg", "farm_id"}``; admins: ``{"kind": "nightly"}``). 202 with ``Location``: poll it."""
    today = utcnow().astimezone(KST).date()
    ctx = state.batch
    job: BatchJob
    if isinstance(body, NightlyJob):
        if user.role != Role.admin:
            raise Forbidden("only an admin starts the nightly scoring")
        job = await ctx.plan_nightly(body.run_date or today, created_by=user.id)
    elif isinstance(body, DemandJob):
        series = f"{body.crop}:{body.region}"
        job = await ctx.plan_single("demand", series, today, created_by=user.id)
    else:
        assert isinstance(body, EsgJob)
        farm = await db.get(Farm, body.farm_id)
        if farm is None or farm.status == FarmStatus.deleted:
            raise NotFound(f"farm {body.farm_id} not found")
        await db.commit()  # SQLite has one writer: free it for the job's own connection
        job = await ctx.plan_single("esg", body.farm_id, today, created_by=user.id)
    await ctx.launch(job.id)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return jobs.progress(job)


@router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: PathId, user: CurrentUser, db: DbDep) -> dict[str, Any]:
    """A job's status, progress and result. Your own jobs (admins, analysts: all)."""
    job = await db.get(BatchJob, job_id)
    # Someone else's job is "not found": its existence is not theirs to learn.
    if job is None or (user.role not in (Role.admin, Role.analyst) and job.created_by != user.id):
        raise NotFound(f"job {job_id} not found")
    return jobs.progress(job)
