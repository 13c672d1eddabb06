"""Ids of detection units that name the same unit across epochs and versions.

An object (a ground-truth box) is ``gt:<k>``, the k-th box of its image or frame: annotations do
not change between evaluations. A false positive is named by what it is, its predicted class and
its rounded box (``pred:3@10,20,50,80``), so that a comparison pairs a false positive only with
the same detection in the other result; two identical ones in an input get ``#1``, ``#2``, ...
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.large_string())


def object_ids(within_input: np.ndarray) -> pd.Series | list:
    """``gt:<k>`` for each object, ``k`` its position among its input's ground-truth boxes."""
    if not len(within_input):
        return []
    prefix = pa.scalar("gt:", pa.large_string())
    return pc.binary_join_element_wise(prefix, _text(within_input), pa.scalar("", pa.large_string())).to_pandas()


def false_positive_ids(inputs: np.ndarray, labels: np.ndarray, coordinates: np.ndarray) -> pd.Series | list:
    """``pred:<label>@<c0>,<c1>,...`` of each false positive from its class and rounded
    ``coordinates`` (one row per unit), made unique within each of ``inputs`` with ``#n``."""
    if not len(labels):
        return []
    parts = [_text(np.asarray(labels, dtype=np.int64))]
    parts += [_text(np.asarray(column)) for column in np.asarray(coordinates).T]
    body = pc.binary_join_element_wise(*parts, pa.scalar(",", pa.large_string()))
    ids = pc.binary_join_element_wise(pa.scalar("pred:", pa.large_string()), body, pa.scalar("", pa.large_string()))
    ids = ids.to_pandas().str.replace(",", "@", n=1, regex=False)
    repeat = pd.DataFrame({"input": inputs, "id": ids}).groupby(["input", "id"], sort=False).cumcount().to_numpy()
    return ids.where(repeat == 0, ids + "#" + repeat.astype(str))
