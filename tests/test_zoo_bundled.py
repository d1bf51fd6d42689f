"""The models that ship inside the package: every bundled entry loads from the package alone
(hashes verified, no cache, no network) and the README's main job works with it."""

import json

import numpy as np
import pytest

from keras_fer import zoo
from keras_fer.zoo import compact, store
from keras_fer.zoo.entry import ZooEntry

#: What the package may carry in model files (docs/zoo.md, "Size"): the wheel stays small.
#: Bundled weights are stored as float16 (half of float32) to leave room under it.
BUNDLED_BUDGET_BYTES = 30_000_000


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


def test_bundled_files_fit_the_budget_with_float16_weights():
    files = store.BUNDLED_DIR / "files"
    entries = {p.stem: ZooEntry.from_json(p)
               for p in (store.BUNDLED_DIR / "entries").glob("*.json")}
    assert {p.name for p in files.iterdir()} <= set(entries)  # no folder without its entry
    for name, entry in entries.items():
        folder = files / name
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert on_disk == set(entry.files), name  # nothing ships that the entry does not list
        if entry.pretrained:
            assert entry.weights_storage["dtype"] == "float16", name
            assert set(compact.stored_dtypes(folder / entry.keras_file)) == {"float16"}, name
            assert entry.weights_storage["bytes"] == entry.files[entry.keras_file]["bytes"]
    total = sum(p.stat().st_size for p in files.rglob("*") if p.is_file())
    assert total <= BUNDLED_BUDGET_BYTES, f"{total / 1e6:.2f} MB of bundled model files"


def test_readme_main_job_predicts_the_bundled_photo(empty_home, capsys):
    from keras_fer.cli import main

    assert main(["predict", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (image,) = doc["images"]
    assert len(image["faces"]) == 1
    face = image["faces"][0]
    assert face["label"] in doc["class_names"]
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
