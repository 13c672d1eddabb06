"""Routes for models, versions, trace part uploads, commits and reading traces back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from ml_debugger.exceptions import ConfigurationError, NoDataError, StoreError, TraceValidationError
from ml_debugger.names import validate_name
from ml_debugger.server.bodies import too_large
from ml_debugger.server.config import INT32_MAX
from ml_debugger.server.context import ServerContext, context
from ml_debugger.server.errors import ApiProblem
from ml_debugger.server.part_check import ExpectedPart
from ml_debugger.server.part_store import store_upload
from ml_debugger.server.streams import ARROW_STREAM, ipc_stream
from ml_debugger.server.uploads import receive_body
from ml_debugger.store.base import PartInfo, PartKey
from ml_debugger.tasks import get_task

router = APIRouter()
Context = Annotated[ServerContext, Depends(context)]
Int32 = Annotated[StrictInt, Field(ge=0, le=INT32_MAX)]


class VersionIn(BaseModel):
    task: str = Field(description="the task of the traces, a registered task name (classification, ...)")


class PartRef(BaseModel):
    dataset_type: str
    epoch: Int32
    part_name: str
    run_id: str
    rank: Int32


class CommitIn(BaseModel):
    parts: list[PartRef] = Field(min_length=1)


def part_json(info: PartInfo) -> dict:
    return {
        "path": info.path, "dataset_type": info.key.dataset_type, "epoch": info.key.epoch, "rows": info.rows,
        "bytes": info.bytes, "run_id": info.run_id, "rank": info.rank,
    }


def names(model: str, version: str) -> tuple[str, str]:
    return validate_name(model, "model_name"), validate_name(version, "version_name")


@router.put("/models/{model}/versions/{version}", summary="Create a model version (idempotent)")
def register_version(model: str, version: str, body: VersionIn, ctx: Context) -> dict:
    model, version = names(model, version)
    task = get_task(body.task).name
    try:
        registered = ctx.store.model_task(model)
    except NoDataError:
        registered = task
    if registered != task:
        raise ApiProblem(
            409, StoreError.__name__,
            f"model {model!r} was registered for task {registered!r}; it cannot record {task!r} traces "
            "(use another model_name)",
        )
    ctx.store.register_version(model, version, task)
    return {"model_name": model, "version_name": version, "task": task}


@router.get("/models/{model}", summary="A model and its task")
def get_model(model: str, ctx: Context) -> dict:
    model = validate_name(model, "model_name")
    return {"model_name": model, "task": ctx.store.model_task(model)}


@router.get("/models/{model}/versions/{version}/epochs", summary="Epochs with committed traces")
def committed_epochs(model: str, version: str, ctx: Context) -> dict:
    return {"epochs": ctx.store.committed_epochs(*names(model, version))}


def _expected_part(ctx: ServerContext, key: PartKey, run_id: str, rank: int, rows: int | None) -> ExpectedPart:
    ctx.store.catalog.require_version(key.model_name, key.version_name)
    values = {
        "model_name": key.model_name, "version_name": key.version_name, "dataset_type": key.dataset_type,
        "epoch": key.epoch, "run_id": run_id, "rank": rank,
    }
    return ExpectedPart(
        schema=get_task(ctx.store.model_task(key.model_name)).schema, values=values, rows=rows,
        version_columns=ctx.store.version_columns(key.model_name, key.version_name),
        version=f"{key.model_name}/{key.version_name}",
    )


@router.put(
    "/models/{model}/versions/{version}/parts/{dataset_type}/{epoch}/{part_name}",
    summary="Upload one trace part file (Parquet or Arrow IPC body); a part name is written once",
    status_code=201,
)
async def upload_part(
    model: str, version: str, dataset_type: str, epoch: Annotated[int, Path(ge=0, le=INT32_MAX)], part_name: str,
    request: Request, response: Response, ctx: Context, run_id: Annotated[str, Query()],
    rank: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0, rows: Annotated[int | None, Query(ge=0)] = None,
) -> dict:
    model, version = names(model, version)
    key = PartKey(model, version, validate_name(dataset_type, "dataset_type"), epoch)
    validate_name(part_name, "part_name")
    validate_name(run_id, "run_id")
    expected = await run_in_threadpool(_expected_part, ctx, key, run_id, rank, rows)
    ctx.upload_slots.take()
    try:
        body = await receive_body(request, ctx.uploads, ctx.config.max_part_bytes, ctx.body_limits)
        try:
            info, new = await run_in_threadpool(store_upload, ctx, key, part_name, expected, body)
        finally:
            body.path.unlink(missing_ok=True)
    finally:
        ctx.upload_slots.give_back()
    if not new:
        response.status_code = 200
    return {"stored": new, "part": part_json(info)}


@router.post(
    "/models/{model}/versions/{version}/commits",
    summary="Commit uploaded parts (all or none; idempotent); run and rank must be the ones the parts hold",
)
def commit_parts(model: str, version: str, body: CommitIn, ctx: Context) -> dict:
    model, version = names(model, version)
    if len(body.parts) > ctx.config.max_commit_parts:
        raise too_large("the commit", str(len(body.parts)), ctx.config.max_commit_parts, "parts")
    ctx.store.catalog.require_version(model, version)
    infos, missing, forged = [], [], []
    with ctx.part_lock:  # the parts are not removed as uncommitted meanwhile
        for ref in body.parts:
            key = PartKey(model, version, validate_name(ref.dataset_type, "dataset_type"), ref.epoch)
            info = ctx.store.stored_part(key, validate_name(ref.part_name, "part_name"))
            if info is None:
                missing.append(f"{ref.dataset_type}/{ref.epoch}/{ref.part_name}")
            elif (info.run_id, info.rank) != (ref.run_id, ref.rank):
                forged.append(
                    f"{info.path} holds run_id={info.run_id!r} rank={info.rank}, not run_id={ref.run_id!r} "
                    f"rank={ref.rank}"
                )
            else:
                infos.append(info)
        if missing:
            raise ApiProblem(
                409, StoreError.__name__,
                f"{len(missing)} parts were never uploaded, so nothing was committed: {missing[:10]}",
            )
        if forged:
            raise TraceValidationError(f"nothing was committed: {len(forged)} parts differ from the commit: {forged[:5]}")
        ctx.store.commit_parts(infos)
    return {"committed": len(infos), "rows": sum(i.rows for i in infos)}


def _epochs(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        epochs = [int(e) for e in text.split(",") if e.strip()]
    except ValueError as exc:
        raise ConfigurationError(f"epochs must be comma-separated ints; got {text!r}") from exc
    if any(not 0 <= e <= INT32_MAX for e in epochs):
        raise ConfigurationError(f"epochs must be between 0 and {INT32_MAX}; got {text!r}")
    return epochs


@router.get(
    "/models/{model}/versions/{version}/traces",
    summary="Committed traces as an Arrow IPC stream (sent one row group at a time)",
    response_class=Response,
    responses={200: {"content": {ARROW_STREAM: {}}}},
)
def read_traces(
    model: str, version: str, ctx: Context,
    epochs: Annotated[str | None, Query(description="comma-separated epochs; all when absent")] = None,
) -> StreamingResponse:
    model, version = names(model, version)
    schema, paths = ctx.store.trace_parts(model, version, _epochs(epochs))
    return StreamingResponse(ipc_stream(schema, ctx.store.iter_traces(schema, paths)), media_type=ARROW_STREAM)
