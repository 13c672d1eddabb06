import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix

from ml_debugger.evaluator.analysis.categories import CATEGORIES
from ml_debugger.evaluator.analysis.heatmaps import (
    HEATMAP_AXES,
    build_heatmaps,
    heatmap_matrix,
    plot_heatmap,
)


def _table(n=500, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 4, n)
    prediction = np.where(rng.random(n) < 0.7, label, rng.integers(0, 4, n))
    codes = [list(rng.choice(["CLS001", "CLS003", "CLS007"], size=rng.integers(0, 3), replace=False)) for _ in range(n)]
    return pd.DataFrame(
        {
            "dataset": rng.choice(["train", "val"], n),
            "epoch": rng.integers(0, 3, n).astype(np.int64),
            "label": label.astype(np.int64),
            "prediction": prediction.astype(np.int64),
            "category": rng.choice(list(CATEGORIES), n),
            "error_codes": codes,
        }
    )


def test_confusion_matrix_equals_scikit_learn():
    table = _table()
    heatmaps = build_heatmaps(table)
    assert set(heatmaps) == set(HEATMAP_AXES)
    val = table[table["dataset"] == "val"]
    matrix = heatmap_matrix(heatmaps["confusion"], dataset="val")
    np.testing.assert_array_equal(matrix.to_numpy(), confusion_matrix(val["label"], val["prediction"]))
    assert matrix.index.name == "label" and matrix.columns.name == "prediction"
    epoch_1 = val[val["epoch"] == 1]
    np.testing.assert_array_equal(
        heatmap_matrix(heatmaps["confusion"], dataset="val", epoch=1).to_numpy(),
        confusion_matrix(epoch_1["label"], epoch_1["prediction"]),
    )


def test_confusion_matrix_is_square_even_when_a_class_is_never_predicted():
    table = _table().assign(prediction=0)
    matrix = heatmap_matrix(build_heatmaps(table)["confusion"])
    assert list(matrix.index) == list(matrix.columns) == [0, 1, 2, 3]
    assert matrix[0].sum() == len(table) and matrix[[1, 2, 3]].to_numpy().sum() == 0


def test_class_by_category_and_epoch_by_category_count_units():
    table = _table()
    heatmaps = build_heatmaps(table)
    expected = pd.crosstab(table["label"], table["category"]).reindex(columns=list(CATEGORIES), fill_value=0)
    got = heatmap_matrix(heatmaps["class_by_category"])
    assert list(got.columns) == list(CATEGORIES)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    by_epoch = heatmap_matrix(heatmaps["epoch_by_category"], dataset="train")
    train = table[table["dataset"] == "train"]
    np.testing.assert_array_equal(
        by_epoch.to_numpy(),
        pd.crosstab(train["epoch"], train["category"]).reindex(columns=list(CATEGORIES), fill_value=0).to_numpy(),
    )


def test_class_by_error_code_counts_each_code_of_each_unit():
    table = _table()
    matrix = heatmap_matrix(build_heatmaps(table)["class_by_error_code"])
    for label in range(4):
        rows = table[table["label"] == label]
        for code in ("CLS001", "CLS003", "CLS007"):
            assert matrix.loc[label, code] == sum(code in codes for codes in rows["error_codes"])


def test_heatmaps_have_string_columns_and_round_trip_through_parquet(tmp_path):
    for name, frame in build_heatmaps(_table()).items():
        assert all(isinstance(c, str) for c in frame.columns)
        assert frame["count"].dtype == np.int64 and (frame["count"] > 0).all()
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path)
        pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


def test_empty_table_gives_empty_heatmaps():
    heatmaps = build_heatmaps(_table().iloc[:0])
    assert all(frame.empty for frame in heatmaps.values())


def test_plot_heatmap_draws_the_matrix():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = heatmap_matrix(build_heatmaps(_table())["confusion"])
    ax = plot_heatmap(matrix, normalize=True)
    image = ax.get_images()[0].get_array()
    np.testing.assert_allclose(image.sum(axis=1), 1.0)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2", "3"]
    assert len(ax.texts) == 16
    plt.close(ax.figure)
