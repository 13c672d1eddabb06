"""The comparison of two stored results, as JSON tables (what ``Evaluator.compare`` returns)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ml_debugger.server.context import ServerContext, context
from ml_debugger.server.routes_traces import names

router = APIRouter()
Context = Annotated[ServerContext, Depends(context)]
MAX_UNITS = 10_000


@router.get(
    "/models/{model}/versions/{version}/compare",
    summary="Two stored results compared unit by unit: metrics, categories, changed units, codes, hotspots",
)
def get_comparison(
    model: str, version: str, ctx: Context,
    baseline: Annotated[str, Query(description="RESULT (of this version), VERSION/RESULT or MODEL/VERSION/RESULT; "
                                               "@latest as RESULT is the newest")],
    candidate: Annotated[str, Query(description="likewise; default: this version's newest result")] = "@latest",
    baseline_epoch: Annotated[str, Query(description="'latest' (each dataset's) or an epoch number")] = "latest",
    candidate_epoch: Annotated[str, Query(description="'latest' (each dataset's) or an epoch number")] = "latest",
    dataset: Annotated[list[str] | None, Query(description="compare only these datasets (repeatable)")] = None,
    hotspot_min_jaccard: Annotated[float, Query(gt=0, le=1)] = 0.1,
    limit: Annotated[int, Query(ge=0, le=MAX_UNITS, description="rows kept of each per-unit table")] = 1000,
) -> dict:
    from ml_debugger.evaluator.compare import compare_results  # pandas-heavy: not at startup
    from ml_debugger.evaluator.compare.refs import load_result
    from ml_debugger.evaluator.compare.units import parse_epoch

    model, version = names(model, version)
    sides = [load_result(ctx.store, ref, model, version) for ref in (baseline, candidate)]
    comparison = compare_results(
        *sides, baseline_epoch=parse_epoch(baseline_epoch), candidate_epoch=parse_epoch(candidate_epoch),
        datasets=dataset, hotspot_min_jaccard=hotspot_min_jaccard,
    )
    return comparison.to_dict(limit=limit)
