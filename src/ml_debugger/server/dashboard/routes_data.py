"""The dashboard's data requests under ``/dashboard/api`` (401 without a session): the sample
table fragment and its CSV export, evaluation jobs and their progress, and image previews."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import parse_qs

import pyarrow.dataset as ds
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ml_debugger.exceptions import ConfigurationError, NoDataError
from ml_debugger.server.context import ServerContext, context
from ml_debugger.server.dashboard.auth import MAX_FORM_BYTES, data_session, same_origin
from ml_debugger.server.dashboard.evaluation import has_previews
from ml_debugger.server.dashboard.preview_boxes import draw_boxes, unit_boxes
from ml_debugger.server.dashboard.rendering import render
from ml_debugger.server.dashboard.results import PREVIEWS, SAMPLES, ResultReader, ResultRef, reader
from ml_debugger.server.dashboard.samples import export_csv, query_from_params, query_samples
from ml_debugger.server.jobs import job_json
from ml_debugger.server.routes_results import EvaluationIn, request_evaluation

router = APIRouter(dependencies=[Depends(data_session)])
Reader = Annotated[ResultReader, Depends(reader)]
Context = Annotated[ServerContext, Depends(context)]
JPEG_MAGIC = b"\xff\xd8\xff"


@router.get("/samples/{model}/{version}/{result}", response_class=HTMLResponse)
def samples(request: Request, model: str, version: str, result: str, results: Reader) -> Response:
    """One page of the sample table, with its filter form (swapped in by htmx)."""
    ref = ResultRef.of(model, version, result)
    page = query_samples(results.samples(ref), query_from_params(request.query_params))
    return render(request, "_samples.html", ref=ref, page=page, facets=results.facets(ref),
                  previews=has_previews(results, ref))


@router.get("/export/{model}/{version}/{result}")
def export(request: Request, model: str, version: str, result: str, results: Reader) -> Response:
    """Every row the filters select, in the table's order, as CSV."""
    ref = ResultRef.of(model, version, result)
    query = query_from_params(request.query_params)
    rows = export_csv(results.samples(ref), query)
    filename = f"{ref.model}-{ref.version}-{ref.result}-samples.csv"
    return StreamingResponse(
        rows, media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "X-Content-Type-Options": "nosniff"},
    )


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ConfigurationError(f"the form is {len(body)} bytes; at most {MAX_FORM_BYTES} are accepted")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


@router.post("/evaluations/{model}/{version}", response_class=HTMLResponse, dependencies=[Depends(same_origin)])
async def evaluate(request: Request, model: str, version: str, ctx: Context) -> Response:
    """Request an evaluation as a server job; answers the job's progress fragment (it polls itself)."""
    form = await _form(request)
    epoch = form.get("n_epoch", "latest").strip()
    body = EvaluationIn(
        request_id=secrets.token_hex(16), result_name=form.get("result_name", "").strip() or None,
        n_epoch=None if epoch == "all" else int(epoch) if epoch.isdigit() else epoch,
    )
    job = await run_in_threadpool(request_evaluation, model, version, body, ctx)
    return render(request, "_job.html", status=202, job=job)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job(request: Request, job_id: str, ctx: Context) -> Response:
    if not (8 <= len(job_id) <= 64 and all(c in "0123456789abcdef" for c in job_id)):
        raise ConfigurationError(f"job ids are 8-64 lowercase hex characters; got {job_id!r}")
    return render(request, "_job.html", job=job_json(ctx.jobs.get(job_id)))


@router.get("/preview/{model}/{version}/{result}")
def preview(
    model: str, version: str, result: str, dataset: str, input_id: str, results: Reader, epoch: int | None = None
) -> Response:
    """The stored JPEG preview of one input: from the result's ``previews`` table, else the ``preview``
    column of its samples (only JPEG bytes are served). For detection, the input's units at
    ``epoch`` (default: its latest) are drawn on it."""
    ref = ResultRef.of(model, version, result)
    table = PREVIEWS if results.has_table(ref, PREVIEWS) else SAMPLES
    data = ds.dataset(results.table_path(ref, table), format="parquet")
    if "preview" not in data.schema.names:
        raise NoDataError(f"result {ref} stores no previews")
    found = data.to_table(
        columns=["preview"], filter=(ds.field("dataset") == dataset) & (ds.field("input_id") == input_id)
    ).column("preview")
    image = next((v for v in found.to_pylist() if v), None)
    if image is None or not image.startswith(JPEG_MAGIC):
        raise NoDataError(f"no preview of input {input_id!r} in {dataset!r}")
    image = draw_boxes(image, unit_boxes(results.table_path(ref, SAMPLES), dataset, input_id, epoch))
    return Response(image, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
