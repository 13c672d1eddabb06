"""Does the aleatoric category blame the data only where the data is at fault? Digits MLP cases.

Trains the quickstart's digits MLP (examples/quickstart.py) in several variants, evaluates every
epoch, and prints, on the training split's latest epoch, the precision and recall of the
``aleatoric_hotspot`` category and of cleanlab's ``find_label_issues`` (on the same
probabilities) against the flipped labels, and the aleatoric share of the clean validation split.

    MLD_HOME=/tmp/bench-aleatoric python benchmarks/bench_aleatoric.py
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues

from ml_debugger.evaluator import Evaluator
from ml_debugger.store import open_store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
CASES = {  # name -> train_and_trace arguments
    "quickstart (150 flips, seed 0, plateau)": {"seed": 0},
    "150 flips, seed 1, plateau": {"seed": 1},
    "150 flips, seed 2, plateau": {"seed": 2},
    "300 flips, seed 0, plateau": {"seed": 0, "n_flipped": 300},
    "no flips, seed 0, plateau": {"seed": 0, "n_flipped": 0},
    "150 flips, seed 0, 4 epochs (undertrained)": {"seed": 0, "max_epochs": 4},
}


def _precision_recall(flagged: np.ndarray, truth: np.ndarray) -> str:
    hits = int((flagged & truth).sum())
    if not truth.any():
        return f"{int(flagged.sum())} flagged"
    return f"{hits / max(int(flagged.sum()), 1):.3f} / {hits / int(truth.sum()):.3f}"


def main() -> None:
    spec = importlib.util.spec_from_file_location("quickstart", EXAMPLE)
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    store = open_store()
    print("| case | epochs | aleatoric precision / recall | cleanlab precision / recall | aleatoric share of clean val |")
    print("|---|---|---|---|---|")
    for i, (name, kwargs) in enumerate(CASES.items()):
        version = f"bench-aleatoric-{i}"
        flipped = {str(x) for x in quickstart.train_and_trace(version=version, **kwargs)}
        result = Evaluator("digits_mlp", version, store=store).request_evaluation(n_epoch=None)
        epoch = result.summary_epochs["train"]
        samples = result.get_samples()
        train = samples[(samples["dataset"] == "train") & (samples["epoch"] == epoch)]
        val = samples[(samples["dataset"] == "val") & (samples["epoch"] == epoch)]
        traces = store.read_traces("digits_mlp", version, [epoch]).to_pandas()
        traces = traces[traces["dataset_type"] == "train"].drop_duplicates("input_id", keep="last")
        traces = traces.set_index("input_id").loc[train["input_id"]]
        logits = np.stack(traces["scores"].to_numpy())
        proba = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        cleanlab = find_label_issues(traces["label"].to_numpy(), proba)
        truth = train["input_id"].isin(flipped).to_numpy()
        aleatoric = (train["category"] == "aleatoric_hotspot").to_numpy()
        share = (val["category"] == "aleatoric_hotspot").mean()
        print(f"| {name} | {epoch + 1} | {_precision_recall(aleatoric, truth)} | "
              f"{_precision_recall(cleanlab, truth)} | {share:.1%} |")


if __name__ == "__main__":
    main()
