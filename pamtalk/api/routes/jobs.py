"""Background jobs (``/v1/jobs``): the nightly scoring (admins) and single heavy predictions
(anyone signed in), on the Celery workers when a broker is configured, else in this process.
Results land in demand_forecasts / esg_assessments under the job's id.

Limits (docs/security.md): one open job per user, kind and target (a second is a 409 naming
the first: follow it), PAMTALK_JOBS_PER_USER_PER_DAY jobs a day (429), and at most
PAMTALK_JOBS_MAX_RUNNING in-process jobs running at once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from pamtalk.api import farm_view, links
from pamtalk.api.deps import CurrentUser, DbDep, PathId, StateDep
from pamtalk.api.schemas.jobs import DemandJob, EsgJob, JobCreate, JobPublic, NightlyJob
from pamtalk.batching import jobs
from pamtalk.db.models import BatchJob, Farm, FarmStatus, Role
from pamtalk.db.types import utcnow
from pamtalk.domain import KST
from pamtalk.errors import Forbidden, NotFound

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses={202: {"links": links.to("/v1/jobs/{job_id}", "job_id", "get")}},
)
async def create_job(
    body: JobCreate, user: CurrentUser, db: DbDep, state: StateDep, response: Response
) -> dict[str, Any]:
    """Queue a heavy prediction (``{"kind": "demand", "crop", "region"}``, or ``{"kind":
    "esg", "farm_id"}`` for the farm's owner, admins and analysts, as it records an
    assessment; admins: ``{"kind": "nightly"}``). 202 with ``Location``: poll it. A second
    open job of yours of the same kind and target is a 409 whose ``Location`` (and
    ``details.job_id``) is the first."""
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
        if not farm_view.sees_private(user, farm.owner_id):
            raise Forbidden(
                "an ESG job records an assessment: only the farm's owner, admins and analysts "
                "start one (POST /v1/esg/score scores any farm without recording it)"
            )
        await db.commit()  # end the read: the job plans in its own (write) session
        job = await ctx.plan_single("esg", body.farm_id, today, created_by=user.id)
    await ctx.launch(job.id)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return _public(job)


@router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: PathId, user: CurrentUser, db: DbDep) -> dict[str, Any]:
    """A job's status, progress and result. Your own jobs (admins, analysts: all)."""
    job = await db.get(BatchJob, job_id)
    # Someone else's job is "not found": its existence is not theirs to learn.
    if job is None or (user.role not in (Role.admin, Role.analyst) and job.created_by != user.id):
        raise NotFound(f"job {job_id} not found")
    return _public(job)


def _public(job: BatchJob) -> dict[str, Any]:
    """The job's progress; a failure's reason (an exception's text from inside the server)
    stays with the operators (``pamtalk batch status``, the log)."""
    shown = jobs.progress(job)
    if shown["error"]:
        where = shown["error"].split(":", 1)[0]  # "chunk 3 failed"
        shown["error"] = f"{where}; the operators have the details (job {job.id})"
    return shown
