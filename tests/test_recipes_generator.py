"""The generator recipes' --smoke modes: tiny self-made data in the real formats, 1 epoch."""

import json
import os

import numpy as np
import pytest


@pytest.fixture(scope="module")
def recipes():
    from keras_fer.recipes import generator_faces, generator_mnist, synthetic_augmentation

    return generator_mnist, generator_faces, synthetic_augmentation


def png_size(path):
    from PIL import Image

    with Image.open(path) as img:
        return img.size


def test_generator_mnist_smoke(recipes, tmp_path):
    from keras_fer.generators import grid_size

    summary = recipes[0].main(["--smoke", "--out", str(tmp_path), "--num-images", "6"])
    # Top row of inputs plus one row per digit, six columns, 28-pixel digits zoomed x3.
    height, width = grid_size(11, 6, (28, 28), zoom=3, pad=2, label_width=72)
    assert png_size(tmp_path / "mutation_table.png") == (width, height)
    assert 0 <= summary["label_following"] <= 1 and np.isfinite(summary["final_loss"])
    assert os.path.exists(tmp_path / "generator" / "generator.keras")
    assert any(f.startswith("events.out") for f in os.listdir(tmp_path / "tensorboard"))
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["train_images"] == 200


def test_generator_faces_smoke(recipes, tmp_path):
    summary = recipes[1].main(["--smoke", "--out", str(tmp_path)])
    assert summary["protocol"] == "subject_kfold"
    assert summary["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise",
                                  "contempt"]
    # The table's faces come from held-out subjects only.
    # 6 subjects x 7 expressions x 3 frames.
    assert summary["test_subjects"] and summary["train_faces"] + summary["test_faces"] == 126
    assert os.path.exists(tmp_path / "mutation_table.png")


@pytest.mark.slow  # two folds x (a generator + three classifiers), twice: minutes on 2 CPUs
def test_synthetic_augmentation_smoke(recipes, tmp_path):
    table, tests = recipes[2].main(["--smoke", "--out", str(tmp_path)])
    assert set(table) == {"original", "synthetic", "combined"}
    for c in table.values():
        assert len(c["per_fold"]) == 2 and all(0 <= a <= 1 for a in c["per_fold"])
    # Synthetic = every training face under each of the 7 emotions; combined adds originals.
    n = table["original"]["train_images"][0]
    assert table["synthetic"]["train_images"][0] == 7 * n
    assert table["combined"]["train_images"][0] == 8 * n
    assert set(tests) == {"synthetic>original", "combined>original"}
    assert os.path.exists(tmp_path / "results.md")
    # A second run finds every result and trains nothing.
    again, _ = recipes[2].main(["--smoke", "--out", str(tmp_path)])
    assert again["original"]["per_fold"] == table["original"]["per_fold"]
