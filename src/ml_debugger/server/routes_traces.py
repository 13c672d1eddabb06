"""Routes for models, versions, trace part uploads, commits and reading traces back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.ipc as ipc
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ml_debugger.exceptions import ConfigurationError, NoDataError, StoreError
from ml_debugger.names import validate_name
from ml_debugger.server.context import ServerContext, context
from ml_debugger.server.errors import ApiProblem
from ml_debugger.server.uploads import check_part, read_part, receive_body
from ml_debugger.store.base import PartInfo, PartKey
from ml_debugger.tasks import get_task

router = APIRouter()
Context = Annotated[ServerContext, Depends(context)]
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class VersionIn(BaseModel):
    task: str = Field(description="the task of the traces, a registered task name (classification, ...)")


class PartRef(BaseModel):
    dataset_type: str
    epoch: int = Field(ge=0)
    part_name: str
    run_id: str
    rank: int = Field(ge=0)


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


def _store_part(
    ctx: ServerContext, key: PartKey, part_name: str, run_id: str, rank: int, rows: int | None, body: Path
) -> tuple[PartInfo, bool]:
    """Store the received part unless a part of that id is already stored; (info, newly stored)."""
    existing = ctx.store.stored_part(key, part_name, run_id, rank)
    if existing is not None:
        return existing, False
    table, parquet = read_part(body)
    check_part(table, key, ctx.store.model_task(key.model_name), run_id, rank, rows)
    if parquet:  # store the checked file as it came: no second encoding
        return ctx.store.adopt_part(key, body, part_name, run_id, rank), True
    return ctx.store.write_part(key, table, part_name, run_id, rank), True


@router.put(
    "/models/{model}/versions/{version}/parts/{dataset_type}/{epoch}/{part_name}",
    summary="Upload one trace part file (Parquet or Arrow IPC body); idempotent per part name",
    status_code=201,
)
async def upload_part(
    model: str, version: str, dataset_type: str, epoch: int, part_name: str, request: Request, response: Response,
    ctx: Context, run_id: Annotated[str, Query()], rank: Annotated[int, Query(ge=0)] = 0,
    rows: Annotated[int | None, Query(ge=0)] = None,
) -> dict:
    model, version = names(model, version)
    key = PartKey(model, version, validate_name(dataset_type, "dataset_type"), epoch)
    validate_name(part_name, "part_name")
    validate_name(run_id, "run_id")
    if epoch < 0:
        raise ConfigurationError(f"epoch must be a non-negative int; got {epoch}")
    await run_in_threadpool(ctx.store.catalog.require_version, model, version)
    body = await receive_body(request, ctx.uploads, ctx.config.max_part_bytes)
    try:
        info, new = await run_in_threadpool(_store_part, ctx, key, part_name, run_id, rank, rows, body)
    finally:
        body.unlink(missing_ok=True)
    if not new:
        response.status_code = 200
    return {"stored": new, "part": part_json(info)}


@router.post("/models/{model}/versions/{version}/commits", summary="Commit uploaded parts (all or none; idempotent)")
def commit_parts(model: str, version: str, body: CommitIn, ctx: Context) -> dict:
    model, version = names(model, version)
    ctx.store.catalog.require_version(model, version)
    infos, missing = [], []
    for ref in body.parts:
        key = PartKey(model, version, validate_name(ref.dataset_type, "dataset_type"), ref.epoch)
        info = ctx.store.stored_part(key, ref.part_name, ref.run_id, ref.rank)
        if info is None:
            missing.append(f"{ref.dataset_type}/{ref.epoch}/{ref.part_name}")
        else:
            infos.append(info)
    if missing:
        raise ApiProblem(
            409, StoreError.__name__,
            f"{len(missing)} parts were never uploaded, so nothing was committed: {missing[:10]}",
        )
    ctx.store.commit_parts(infos)
    return {"committed": len(infos), "rows": sum(i.rows for i in infos)}


@router.get(
    "/models/{model}/versions/{version}/traces",
    summary="Committed traces as an Arrow IPC stream",
    response_class=Response,
    responses={200: {"content": {ARROW_STREAM: {}}}},
)
def read_traces(
    model: str, version: str, ctx: Context,
    epochs: Annotated[str | None, Query(description="comma-separated epochs; all when absent")] = None,
) -> Response:
    model, version = names(model, version)
    try:
        wanted = None if epochs is None else [int(e) for e in epochs.split(",") if e.strip()]
    except ValueError as exc:
        raise ConfigurationError(f"epochs must be comma-separated ints; got {epochs!r}") from exc
    table = ctx.store.read_traces(model, version, wanted)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM)
