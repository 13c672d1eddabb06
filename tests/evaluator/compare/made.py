"""Results built by hand, for comparisons whose every unit the test chooses."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ml_debugger.evaluator import Result

CATEGORIES = ["stable_coverage", "operational_coverage", "hotspot", "recessive_hotspot", "critical_hotspot",
              "aleatoric_hotspot"]
CODES = pd.DataFrame({"code": ["CLS001", "CLS007"], "name": ["confident_misclassification", "error_cluster_member"]})


def units(ids: Sequence, correct: Sequence[bool], *, dataset: str = "val", epoch: int = 0,
          clusters: Sequence | None = None, hashes: Sequence[str] | None = None, **columns) -> pd.DataFrame:
    """Per-unit rows: a wrong unit is critical_hotspot with CLS001 (and CLS007 inside a cluster)."""
    n = len(ids)
    clusters = [None] * n if clusters is None else list(clusters)
    table = pd.DataFrame({
        "input_id": [str(i) for i in ids],
        "input_hash": list(hashes) if hashes is not None else [f"h{i}" for i in ids],
        "dataset": dataset, "epoch": epoch, "label": 0, "prediction": [0 if c else 1 for c in correct],
        "correct": list(correct), "confidence": [0.9 - 0.01 * i for i in range(n)],
        "category": ["stable_coverage" if c else "critical_hotspot" for c in correct],
        "error_codes": [[] if c else ["CLS001"] + (["CLS007"] if k is not None else [])
                        for c, k in zip(correct, clusters, strict=True)],
        "hotspot_cluster": pd.array(clusters, dtype="Int64"), **columns,
    })
    return table


def result(name: str, samples: pd.DataFrame | Sequence[pd.DataFrame], *, version: str = "v1",
           task: str = "classification", metrics: pd.DataFrame | None = None) -> Result:
    """A Result over ``samples`` with accuracy metrics, category ratios, codes and hotspot descriptions."""
    samples = pd.concat(samples, ignore_index=True) if not isinstance(samples, pd.DataFrame) else samples
    groups = samples.groupby(["dataset", "epoch"])
    if metrics is None:
        metrics = groups.agg(counts=("correct", "size"), accuracy=("correct", "mean")).reset_index()
    shares = pd.crosstab([samples["dataset"], samples["epoch"]], samples["category"], normalize="index")
    categories = shares.reindex(columns=CATEGORIES, fill_value=0.0).add_suffix("_ratio").reset_index()
    hotspots = pd.DataFrame(columns=["cluster_id", "dataset", "epoch", "size", "dominant_labels"])
    if "hotspot_cluster" in samples.columns:
        clustered = samples.dropna(subset=["hotspot_cluster"])
        hotspots = clustered.groupby("hotspot_cluster").agg(dataset=("dataset", "first"), epoch=("epoch", "first"),
                                                            size=("input_id", "size")).reset_index()
        hotspots = hotspots.rename(columns={"hotspot_cluster": "cluster_id"}).astype({"cluster_id": int})
        hotspots["dominant_labels"] = [[int(i)] for i in hotspots["cluster_id"]]
    meta = {"result_name": name, "model_name": "m", "version_name": version, "task": task,
            "epochs": sorted(int(e) for e in samples["epoch"].unique())}
    return Result(meta, {"samples": samples, "metrics": metrics, "categories": categories, "codes": CODES,
                         "hotspots": hotspots, "issues": pd.DataFrame()})
