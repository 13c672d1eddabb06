"""The sample table's filtering, sorting, paging and CSV export, checked against pandas on 100k rows."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.server.dashboard.sample_source import SampleSource
from ml_debugger.server.dashboard.samples import (
    SampleQuery,
    display_columns,
    export_csv,
    facets,
    query_from_params,
    query_samples,
)

CODES = ["CLS001", "CLS002", "CLS003", "CLS007"]
CATEGORIES = ["stable_coverage", "operational_coverage", "hotspot", "critical_hotspot"]


def samples_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """A classification-like samples table of ``rows`` units (two datasets, three epochs)."""
    rng = np.random.default_rng(seed)
    n_codes = rng.integers(0, 3, rows)
    clusters = pd.Series(rng.integers(0, 5, rows), dtype="Int64").mask(rng.random(rows) < 0.7)
    return pd.DataFrame({
        "input_id": [f"id{i}" for i in range(rows)],
        "input_hash": [f"h{i}" for i in range(rows)],
        "dataset": rng.choice(["train", "val"], rows),
        "epoch": rng.integers(0, 3, rows),
        "label": rng.integers(0, 10, rows),
        "prediction": rng.integers(0, 10, rows),
        "confidence": rng.random(rows),
        "loss": np.where(rng.random(rows) < 0.01, np.nan, rng.exponential(size=rows)),
        "category": rng.choice(CATEGORIES, rows),
        "error_codes": [list(rng.choice(CODES, k, replace=False)) for k in n_codes],
        "hotspot_cluster": clusters,
    })


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    frame = samples_table(100_000)
    path = tmp_path_factory.mktemp("samples") / "samples.parquet"
    pq.write_table(pa.Table.from_pandas(frame), path)
    return path, frame


@pytest.fixture(scope="module", params=["in memory", "read per request"])
def big(request: pytest.FixtureRequest, big_file: tuple[Path, pd.DataFrame]) -> tuple[SampleSource, pd.DataFrame]:
    """The 100k-row table, kept in memory and (with a zero budget) read from disk for every request."""
    source = SampleSource(big_file[0], max_bytes=0 if request.param == "read per request" else 2**30)
    assert source.cached == (request.param == "in memory")
    return source, big_file[1]


def expected(frame: pd.DataFrame, query: SampleQuery) -> pd.DataFrame:
    selected = frame
    for column, value in (("dataset", query.dataset), ("epoch", query.epoch), ("category", query.category),
                          ("label", query.label), ("hotspot_cluster", query.cluster)):
        if value is not None:
            selected = selected[selected[column].astype(str) == str(value)]
    if query.code is not None:
        selected = selected[[query.code in codes for codes in selected["error_codes"]]]
    if query.sort is not None:
        selected = selected.sort_values(query.sort, ascending=not query.descending, kind="stable", na_position="last")
    return selected


@pytest.mark.parametrize("query", [
    SampleQuery(),
    SampleQuery(dataset="val", epoch=2, sort="loss", descending=True, page=3),
    SampleQuery(code="CLS002", category="hotspot", sort="confidence", page_size=200, page=2),
    SampleQuery(label="7", cluster=3, sort="input_id"),
    SampleQuery(dataset="train", code="CLS999"),
])
def test_a_page_is_the_slice_pandas_would_give(big: tuple[SampleSource, pd.DataFrame], query: SampleQuery) -> None:
    source, frame = big
    page = query_samples(source, query)
    reference = expected(frame, query)
    start = (page.query.page - 1) * query.page_size
    assert page.total == len(reference)
    assert page.pages == max(1, -(-len(reference) // query.page_size))
    assert [row["input_id"] for row in page.rows] == reference["input_id"].iloc[start:start + query.page_size].tolist()


def test_pages_past_the_end_show_the_last_one(big: tuple[SampleSource, pd.DataFrame]) -> None:
    page = query_samples(big[0], SampleQuery(dataset="val", epoch=0, page=10**6))
    assert page.query.page == page.pages and page.rows


def test_the_default_view_shows_identity_classes_codes_and_some_signals(big: tuple[SampleSource, pd.DataFrame]) -> None:
    schema = big[0].schema
    assert display_columns(schema) == [
        "input_id", "dataset", "epoch", "label", "prediction", "category", "error_codes", "hotspot_cluster",
        "confidence", "loss",
    ]
    assert "input_hash" not in display_columns(schema, all_columns=True)


def test_csv_export_has_every_filtered_row_in_order(big: tuple[SampleSource, pd.DataFrame]) -> None:
    source, frame = big
    query = SampleQuery(dataset="val", code="CLS001", sort="loss", descending=True)
    exported = pd.read_csv(io.BytesIO(b"".join(export_csv(source, query))), keep_default_na=False)
    reference = expected(frame, query)
    assert exported["input_id"].tolist() == reference["input_id"].tolist()
    assert exported["error_codes"].tolist() == [";".join(c) for c in reference["error_codes"]]


def test_facets_list_each_filter_value(big: tuple[SampleSource, pd.DataFrame]) -> None:
    found = facets(big[0])
    assert found.datasets == ["train", "val"] and found.epochs == [0, 1, 2]
    assert found.codes == CODES and found.labels == list(range(10)) and found.clusters == [0, 1, 2, 3, 4]


def test_url_parameters(big: tuple[SampleSource, pd.DataFrame]) -> None:
    query = query_from_params({"dataset": "", "epoch": "2", "code": "CLS001", "desc": "1", "page": "0"}, dataset="val")
    assert query == SampleQuery(dataset=None, epoch=2, code="CLS001", descending=True, page=1)
    assert query_from_params({}, dataset="val", epoch=1) == SampleQuery(dataset="val", epoch=1)
    assert query_from_params({k: str(v) for k, v in query.params().items()}) == query  # a URL round trip
    with pytest.raises(ConfigurationError, match="epoch must be an integer"):
        query_from_params({"epoch": "two"})
    with pytest.raises(ConfigurationError, match="page_size must be one of"):
        query_from_params({"page_size": "1000"})
    with pytest.raises(ConfigurationError, match="cannot sort by 'error_codes'"):
        query_samples(big[0], SampleQuery(sort="error_codes"))
    with pytest.raises(ConfigurationError, match="cannot filter label"):
        query_samples(big[0], SampleQuery(label="cat"))
