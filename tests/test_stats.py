"""Class-count tables and bar charts."""

import numpy as np
import pytest
from PIL import Image

from keras_fer.datasets import stats
from keras_fer.datasets.records import FERDataset, Record


@pytest.fixture(autouse=True)
def _seed():
    """Overrides the conftest fixture: no Keras state here (its clear_session is slow)."""
    yield


def toy():
    spec = [("Training", 0)] * 3 + [("Training", 2)] + [("PublicTest", 0), ("PublicTest", 1)]
    return FERDataset("toy", [Record(f"r{i}", label, split=s) for i, (s, label) in
                              enumerate(spec)], ("angry", "disgust", "fear"))


def test_split_class_counts():
    classes, counts = stats.split_class_counts(toy())
    assert classes == ("angry", "disgust", "fear")
    assert {k: v.tolist() for k, v in counts.items()} == {"Training": [3, 0, 1],
                                                         "PublicTest": [1, 1, 0]}
    no_split = FERDataset("x", [Record("a", 1), Record("b", 1)], ("p", "q"))
    assert stats.split_class_counts(no_split)[1]["all"].tolist() == [0, 2]


def test_table_text():
    table = stats.format_counts_table(toy())
    lines = table.splitlines()
    assert lines[0].split() == ["class", "Training", "PublicTest", "total"]
    assert lines[2].split() == ["angry", "3", "1", "4"]
    assert lines[3].split() == ["disgust", "0", "1", "1"]
    assert lines[-1].split() == ["total", "4", "2", "6"]


def test_mapping_of_datasets_and_thousands():
    big = FERDataset("b", [Record(str(i), 0) for i in range(1234)], ("x", "y"))
    small = FERDataset("s", [Record("z", 1)], ("x", "y"))
    table = stats.format_counts_table({"train": big, "test": small})
    assert table.splitlines()[2].split() == ["x", "1,234", "0", "1,234"]
    with pytest.raises(ValueError, match="same classes"):
        stats.split_class_counts({"a": big, "b": FERDataset("c", [], ("x",))})
    with pytest.raises(ValueError, match="data must be a FERDataset"):
        stats.split_class_counts([big])


def test_bar_chart_png(tmp_path):
    path = str(tmp_path / "counts.png")
    text = stats.dataset_stats(toy(), png=path)
    assert "PublicTest" in text
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= 600
        pixels = np.asarray(img.convert("L"))
    assert pixels.min() < 128 < pixels.max()  # something was drawn
