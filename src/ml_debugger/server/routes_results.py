"""Routes for evaluation jobs and stored results (summary JSON; tables as Parquet or Arrow)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from ml_debugger.exceptions import ConfigurationError, ResultExistsError
from ml_debugger.names import validate_name
from ml_debugger.server.config import INT32_MAX
from ml_debugger.server.context import ServerContext, context
from ml_debugger.server.jobs import job_json
from ml_debugger.server.routes_traces import names
from ml_debugger.server.streams import ARROW_STREAM, ipc_stream, parquet_row_groups
from ml_debugger.store.base import EvaluationRequest

router = APIRouter()
Context = Annotated[ServerContext, Depends(context)]
PARQUET = "application/vnd.apache.parquet"
_REQUEST_ID = re.compile(r"[0-9a-f]{8,64}")


class EvaluationIn(BaseModel):
    request_id: str = Field(description="a client-chosen hex id (8-64 chars); resubmitting it returns the same job")
    result_name: str | None = None
    n_epoch: Any = Field("latest", description="'latest', an epoch (an int, not a bool), or null for every epoch")
    thresholds: dict[str, Any] = Field(default_factory=dict, description="AnalysisConfig overrides")


@router.post(
    "/models/{model}/versions/{version}/evaluations", status_code=202,
    summary="Request an evaluation: a background job whose status is polled at /jobs/{id}",
)
def request_evaluation(model: str, version: str, body: EvaluationIn, ctx: Context) -> dict:
    from ml_debugger.evaluator.analysis.config import AnalysisConfig  # heavy (scikit-learn): not at startup
    from ml_debugger.evaluator.evaluator import normalize_n_epoch

    model, version = names(model, version)
    if not _REQUEST_ID.fullmatch(body.request_id):
        raise ConfigurationError(f"request_id must be 8-64 lowercase hex characters; got {body.request_id!r}")
    config = AnalysisConfig.from_kwargs(**body.thresholds)
    request = EvaluationRequest(
        result_name=None if body.result_name is None else validate_name(body.result_name, "result_name"),
        n_epoch=_epoch(normalize_n_epoch(body.n_epoch)),
        thresholds={name: getattr(config, name) for name in body.thresholds},
    )
    ctx.store.catalog.require_version(model, version)
    name_taken = request.result_name is not None and ctx.store.catalog.has_result(model, version, request.result_name)
    if name_taken and not _job_exists(ctx, body.request_id):  # (a retried submission finds its finished job)
        raise ResultExistsError(
            f"a result named {request.result_name!r} already exists for {model}/{version}; choose another result_name"
        )
    job = ctx.jobs.submit(body.request_id, model, version, request)
    if (job["model"], job["version"]) != (model, version):
        raise ConfigurationError(f"request_id {body.request_id} was already used for {job['model']}/{job['version']}")
    return job_json(job)


def _epoch(n_epoch: str | int | None) -> str | int | None:
    if isinstance(n_epoch, int) and n_epoch > INT32_MAX:
        raise ConfigurationError(f"n_epoch must be at most {INT32_MAX} (epochs are int32); got {n_epoch}")
    return n_epoch


def _job_exists(ctx: ServerContext, job_id: str) -> bool:
    try:
        ctx.store.catalog.job(job_id)
    except LookupError:
        return False
    return True


@router.get("/jobs/{job_id}", summary="An evaluation job: queued, running, succeeded (result_name) or failed (error)")
def get_job(job_id: str, ctx: Context) -> dict:
    if not _REQUEST_ID.fullmatch(job_id):
        raise ConfigurationError(f"job ids are 8-64 lowercase hex characters; got {job_id!r}")
    return job_json(ctx.jobs.get(job_id))


@router.get("/models/{model}/versions/{version}/results", summary="Stored results of a version")
def list_results(model: str, version: str, ctx: Context) -> dict:
    frame = ctx.store.list_results(*names(model, version))
    return {"columns": list(frame.columns), "results": json.loads(frame.to_json(orient="records"))}


@router.get("/models/{model}/versions/{version}/results/{result}", summary="A result's metadata and table names")
def get_result(model: str, version: str, result: str, ctx: Context) -> dict:
    model, version = names(model, version)
    result = validate_name(result, "result_name")
    return {
        "meta": ctx.store.catalog.result_meta(model, version, result),
        "tables": ctx.store.result_tables(model, version, result),
    }


@router.get(
    "/models/{model}/versions/{version}/results/{result}/tables/{table}",
    summary="One table of a result as Parquet (default) or an Arrow IPC stream",
    response_class=Response,
    responses={200: {"content": {PARQUET: {}, ARROW_STREAM: {}}}},
)
def get_result_table(
    model: str, version: str, result: str, table: str, ctx: Context,
    format: Annotated[Literal["parquet", "arrow"], Query()] = "parquet",
) -> Response:
    model, version = names(model, version)
    path = ctx.store.result_table_path(model, version, validate_name(result, "result_name"), table)
    if format == "parquet":
        return FileResponse(path, media_type=PARQUET)
    schema, row_groups = parquet_row_groups(path)
    return StreamingResponse(ipc_stream(schema, row_groups), media_type=ARROW_STREAM)
