"""The dashboard's pages: Home, Training, Evaluation and Compare (sign-in required)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ml_debugger.exceptions import ConfigurationError, NoDataError
from ml_debugger.names import validate_name
from ml_debugger.server.dashboard.auth import page_session
from ml_debugger.server.dashboard.compare_page import compare_view
from ml_debugger.server.dashboard.evaluation import evaluation_view
from ml_debugger.server.dashboard.rendering import render, version_url
from ml_debugger.server.dashboard.results import ResultReader, ResultRef, reader
from ml_debugger.server.dashboard.views import find_model, home_view, latest_version, training_view

router = APIRouter(dependencies=[Depends(page_session)])
Reader = Annotated[ResultReader, Depends(reader)]


def _page(request: Request, template: str, build: Callable[[], dict[str, Any]]) -> Response:
    """Render ``template`` with what ``build`` returns; unknown names and bad parameters get an error page."""
    try:
        values = build()
    except NoDataError as exc:
        return render(request, "error.html", status=404, title="Not found", message=str(exc))
    except ConfigurationError as exc:
        return render(request, "error.html", status=400, title="Bad request", message=str(exc))
    return render(request, template, **values)


def _epoch(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    if not text.strip().isdigit():
        raise ConfigurationError(f"epoch must be a non-negative integer; got {text!r}")
    return int(text)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, results: Reader) -> Response:
    return _page(request, "home.html", lambda: home_view(results))


@router.get("/models/{model}", response_class=HTMLResponse)
def model_page(request: Request, model: str, results: Reader) -> Response:
    try:
        version = latest_version(find_model(results, validate_name(model, "model_name")))
    except (NoDataError, ConfigurationError) as exc:
        return render(request, "error.html", status=404, title="Not found", message=str(exc))
    return RedirectResponse(version_url(model, version), status_code=307)


@router.get("/models/{model}/versions/{version}", response_class=HTMLResponse)
def training(request: Request, model: str, version: str, results: Reader) -> Response:
    def build() -> dict[str, Any]:
        names = (validate_name(model, "model_name"), validate_name(version, "version_name"))
        return {"view": training_view(results, *names)}

    return _page(request, "training.html", build)


@router.get("/models/{model}/versions/{version}/results/{result}", response_class=HTMLResponse)
def evaluation(
    request: Request, model: str, version: str, result: str, results: Reader,
    dataset: str | None = None, epoch: str | None = None,
) -> Response:
    def build() -> dict[str, Any]:
        ref = ResultRef.of(model, version, result)
        view = evaluation_view(results, ref, dataset or None, _epoch(epoch), request.query_params)
        return {"view": view, "facets": results.facets(ref)}

    return _page(request, "evaluation.html", build)


@router.get("/compare", response_class=HTMLResponse)
def compare(
    request: Request, results: Reader,
    result: Annotated[list[str], Query(description="model/version/result; the oldest is the baseline")] = [],  # noqa: B006 - FastAPI's list default
    dataset: str | None = None,
) -> Response:
    def build() -> dict[str, Any]:
        refs = list(dict.fromkeys(ResultRef.parse(r) for r in result if r))
        return {"view": compare_view(results, refs, dataset or None)}

    return _page(request, "compare.html", build)
