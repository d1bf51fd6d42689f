"""The models that ship inside the package: every bundled entry loads from the package alone
(hashes verified, no cache, no network) and the README's main job works with it."""

import json

import numpy as np
import pytest

from keras_fer import zoo


@pytest.fixture()
def empty_home(tmp_path, monkeypatch):
    # An empty KERAS_FER_HOME: the only place left to find files is the package.
    monkeypatch.setenv("KERAS_FER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def bundled():
    return zoo.list_models(pretrained=True)


def test_the_readme_main_job_model_is_bundled():
    assert "mini_xception.fer2013" in bundled()


@pytest.mark.parametrize("name", bundled())
def test_bundled_entry_loads_and_carries_its_numbers(name, empty_home):
    entry = zoo.describe(name)
    model = zoo.load(name)
    assert list(model.class_names) == list(entry.class_names)
    assert tuple(model.input_shape[1:]) == tuple(entry.input_shape)
    # A model still in training reports its validation split only (PublicTest is measured
    # once, when it is final), and its protocol says so.
    accuracy = entry.metrics.get("accuracy", entry.metrics.get("val_accuracy"))
    assert 0.0 < accuracy <= 1.0
    if "accuracy" not in entry.metrics:
        assert "PublicTest not measured" in entry.protocol and entry.training_history
    assert entry.recipe.startswith("keras-fer train zoo_checkpoints --models " + name)
    x = np.random.default_rng(0).uniform(0, 255, (2,) + tuple(entry.input_shape))
    logits = model.predict(x.astype("float32"), verbose=0)
    assert logits.shape == (2, len(entry.class_names)) and np.isfinite(logits).all()


def test_readme_main_job_predicts_the_bundled_photo(empty_home, capsys):
    from keras_fer.cli import main

    assert main(["predict", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (image,) = doc["images"]
    assert len(image["faces"]) == 1
    face = image["faces"][0]
    assert face["label"] in doc["class_names"]
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
