"""The whole classification analysis at scale: ``analyze`` on 100k units with 512-d features.

    python benchmarks/bench_evaluation.py [--units 100000] [--dim 512] [--classes 10]

One epoch, 20% "train" / 80% "val". Features are a class mixture living near a 32-d subspace
plus isotropic noise; probabilities are a softmax of a noisy read-out of the latent class position
(about 85% accurate), and a 3% slice of class-0 inputs (a tight blob off the class) is predicted as
class 1, so the hotspot search has a real cluster to find. Reports the wall time of ``analyze``
(signals, hotspots, categories, codes, tables) per step and in total, and the peak resident memory
of the process. Target (DESIGN.md section 8, issue 3 item 8): under 60 s and 4 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

import numpy as np
import pandas as pd

from ml_debugger.evaluator._data import EvalData
from ml_debugger.evaluator.analysis import analyze


def make_data(units: int, dim: int, classes: int, seed: int = 0) -> tuple[EvalData, np.ndarray]:
    """Synthetic traces of one epoch, and the mask of the planted slice of systematic errors."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, units)
    latent_dim = 32
    centers = rng.normal(size=(classes, latent_dim)) * 0.5
    latent = centers[labels] + rng.normal(size=(units, latent_dim))
    in_slice = (labels == 0) & (rng.random(units) < 0.3)
    offset = rng.normal(size=latent_dim)
    latent[in_slice] = centers[0] + 4.0 * offset / np.linalg.norm(offset)
    latent[in_slice] += 0.2 * rng.normal(size=(int(in_slice.sum()), latent_dim))
    mixing = rng.normal(size=(latent_dim, dim)).astype(np.float32) / np.sqrt(latent_dim)
    features = latent.astype(np.float32) @ mixing
    features += 0.3 * rng.standard_normal((units, dim), dtype=np.float32)
    logits = -0.5 * ((latent[:, None, :] - centers[None]) ** 2).sum(axis=2)
    logits += rng.normal(scale=1.0, size=logits.shape)
    logits[in_slice, 1] = logits[in_slice].max(axis=1) + rng.uniform(0.5, 1.5, int(in_slice.sum()))
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    dataset = np.where(rng.random(units) < 0.2, "train", "val")
    samples = pd.DataFrame(
        {
            "input_id": [f"id{i}" for i in range(units)],
            "input_hash": [f"{i:032x}" for i in range(units)],
            "dataset": dataset,
            "epoch": np.zeros(units, dtype=np.int64),
            "global_step": pd.array(np.zeros(units, dtype=np.int64), dtype="Int64"),
            "label": labels.astype(np.int64),
        }
    )
    return EvalData(samples=samples, probabilities=proba, features=features), in_slice


class _StepTimes(logging.Handler):
    """Collect the per-step wall times that ``analyze`` logs at DEBUG level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("analysis step"):
            self.lines.append(record.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    data, in_slice = make_data(args.units, args.dim, args.classes)
    steps = _StepTimes()
    analysis_logger = logging.getLogger("ml_debugger.evaluator.analysis")
    analysis_logger.setLevel(logging.DEBUG)
    analysis_logger.addHandler(steps)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    started = time.perf_counter()
    result = analyze(data, progress=True)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    accuracy = result.samples["correct"].mean()
    print(
        f"analyze: {args.units} units x {args.dim} features, {args.classes} classes "
        f"(accuracy {accuracy:.3f}, {len(result.hotspots)} hotspot clusters): {elapsed:.1f} s, "
        f"peak RSS {peak:.2f} GiB (inputs built: {before:.2f} GiB)"
    )
    for line in steps.lines:
        print("  " + line)
    samples = result.samples
    for dataset in ("train", "val"):
        errors = in_slice & ~samples["correct"].to_numpy() & (samples["dataset"] == dataset).to_numpy()
        clusters = samples.loc[errors, "hotspot_cluster"]
        if clusters.notna().any():
            best = clusters.value_counts().idxmax()
            members = (samples["hotspot_cluster"] == best).fillna(False).to_numpy()
            print(
                f"  planted slice in {dataset}: {(clusters == best).fillna(False).mean():.0%} of its "
                f"{errors.sum()} errors in cluster {best}, which is {in_slice[members].mean():.0%} slice"
            )


if __name__ == "__main__":
    main()
