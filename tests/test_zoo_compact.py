"""float16 storage of a .keras file's weights (keras_fer.zoo.compact): the rewrite, what it
refuses, its verification, publish's default, and converting a release in place."""

import io
import json
import zipfile

import numpy as np
import pytest

from keras_fer import zoo
from keras_fer.models import load_model
from keras_fer.zoo import compact, store
from keras_fer.zoo.publish import compact_release
from keras_fer.zoo.entry import ZooEntry
from test_zoo_faults import CLASSES, _tiny_model


def _pixels(n=4):
    return np.random.default_rng(1).uniform(0, 255, (n, 24, 24, 1)).astype("float32")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny model with moved weights, saved as float32."""
    folder = tmp_path_factory.mktemp("saved")
    model = _tiny_model()
    model.save(folder / "model.keras")
    return model, folder / "model.keras"


@pytest.fixture
def homes(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_FER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(store, "BUNDLED_DIR", tmp_path / "package")
    return tmp_path


def _assign(model, layer, index, change):
    variable = model.get_layer(layer).weights[index] if layer else model.weights[index]
    value = variable.numpy()
    change(value)
    variable.assign(value)
    return variable


def test_round_trip_halves_the_weights_and_loads_float32(saved, tmp_path):
    import keras

    model, path = saved
    record = compact.store_float16(path, tmp_path / "half.keras")
    assert compact.stored_dtypes(path) == {"float32": model.count_params()}
    assert compact.stored_dtypes(tmp_path / "half.keras") == {"float16": model.count_params()}
    with zipfile.ZipFile(path) as a, zipfile.ZipFile(tmp_path / "half.keras") as b:
        assert a.namelist() == b.namelist()
        assert a.read("config.json") == b.read("config.json")
        assert len(b.read("model.weights.h5")) < 0.75 * len(a.read("model.weights.h5"))
    assert record["bytes"] == (tmp_path / "half.keras").stat().st_size < record["float32_bytes"]
    # A probe image near a tie of this random model may flip (store_float16 allows that only
    # within its tie margin); how the fixture's model is drawn depends on the test order.
    assert record["dtype"] == "float16" and record["top1_agreement"] >= 62 / 64
    assert 0 < record["max_softmax_diff"] <= compact.MAX_SOFTMAX_DIFF
    assert record["flushed_to_zero"] == 0
    for loaded in (load_model(str(tmp_path / "half.keras")),
                   keras.saving.load_model(tmp_path / "half.keras")):
        assert {v.dtype for v in loaded.weights} == {"float32"}
        for before, after in zip(model.weights, loaded.weights):  # exactly the rounded values
            np.testing.assert_array_equal(after.numpy(),
                                          before.numpy().astype(np.float16).astype(np.float32))
        np.testing.assert_allclose(
            keras.ops.softmax(loaded(_pixels(), training=False)).numpy(),
            keras.ops.softmax(model(_pixels(), training=False)).numpy(), atol=1e-2, rtol=0)
    # Rewriting the same file again gives the same bytes (zip dates and order are kept).
    compact.rewrite_keras_file(path, tmp_path / "again.keras")
    assert (tmp_path / "again.keras").read_bytes() == (tmp_path / "half.keras").read_bytes()


def test_only_float32_datasets_change():
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        group = h5.create_group("layers/dense/vars")
        group.attrs["name"] = "dense"
        group["0"] = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
        group["0"].attrs["note"] = "kept"
        group["1"] = np.arange(3, dtype=np.float64) / 3
        group["2"] = np.arange(4, dtype=np.int64)
    data, flushed = compact.float16_weights(buffer.getvalue())
    assert flushed.size == 0
    with h5py.File(io.BytesIO(data), "r") as h5:
        group = h5["layers/dense/vars"]
        assert group.attrs["name"] == "dense" and group["0"].attrs["note"] == "kept"
        assert group["0"].dtype == np.float16 and group["1"].dtype == np.float64
        assert group["2"].dtype == np.int64
        np.testing.assert_array_equal(group["1"][()], np.arange(3) / 3)
        np.testing.assert_array_equal(group["2"][()], np.arange(4))


def test_refuses_values_that_float16_cannot_hold(tmp_path):
    model = _tiny_model()
    _assign(model, "predictions", 0, lambda w: w.__setitem__((0, 0), 1e5))
    model.save(tmp_path / "big.keras")
    with pytest.raises(ValueError, match=r"layer 'predictions'.*1 value\(s\) above float16's "
                                         r"maximum 65504 \(largest \|w\| = 100000\)"):
        compact.store_float16(tmp_path / "big.keras", tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.keras"]  # nothing left over
    # An array of tiny values only: they would all become 0.
    model = _tiny_model()
    _assign(model, "predictions", 1, lambda b: b.__setitem__(slice(None), 1e-9))
    model.save(tmp_path / "tiny.keras")
    with pytest.raises(ValueError, match=r"layer 'predictions'.*3 non-zero value\(s\) below "
                                         r"float16's smallest subnormal would become 0"):
        compact.store_float16(tmp_path / "tiny.keras", tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()


def test_negligible_specks_become_zero_and_are_counted(tmp_path):
    model = _tiny_model()
    variable = _assign(model, "predictions", 0, lambda w: w.__setitem__((0, 0), 6e-9))
    model.save(tmp_path / "speck.keras")
    record = compact.store_float16(tmp_path / "speck.keras", tmp_path / "out.keras")
    assert record["flushed_to_zero"] == 1
    assert record["largest_flushed"] == pytest.approx(6e-9)
    loaded = load_model(str(tmp_path / "out.keras"))
    kernel = loaded.get_layer("predictions").weights[0].numpy()
    assert kernel[0, 0] == 0 and variable.numpy()[0, 0] != 0


def test_outputs_beyond_tolerance_are_refused(saved, tmp_path, monkeypatch):
    _, path = saved
    monkeypatch.setattr(compact, "MAX_SOFTMAX_DIFF", 1e-9)
    with pytest.raises(ValueError, match=r"\(probe\): the float16 weights change the outputs "
                                         r"beyond tolerance on 64 images"):
        compact.store_float16(path, tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()


class _Fixed:
    """A stand-in model that returns fixed logits."""

    def __init__(self, logits):
        self.logits = np.asarray(logits, np.float32)

    def __call__(self, images, training=False):
        return self.logits[:len(images)]


def test_top1_changes_count_unless_tied():
    images = np.zeros((3, 2, 2, 1), np.float32)
    reference = _Fixed(np.log([[0.50, 0.49, 0.01], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]]))
    candidate = _Fixed(np.log([[0.49, 0.50, 0.01], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]]))
    diff = compact.compare_outputs(reference, candidate, images, labels=[0, 0, 2])
    assert diff["changed_top1"] == 2 and diff["changed_top1_not_tied"] == 1
    assert diff["top1_agreement"] == pytest.approx(1 / 3)
    assert diff["accuracy_float32"] == 1.0 and diff["accuracy_float16"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="1 top-1 prediction"):
        compact.check_close(diff, "x")
    tied = compact.compare_outputs(reference, _Fixed(np.log([[0.49, 0.50, 0.01],
                                                             [0.8, 0.1, 0.1],
                                                             [0.2, 0.3, 0.5]])), images)
    compact.check_close(tied, "x")  # a near-tie broken the other way is within tolerance


def test_publish_bundle_stores_float16_by_default(saved, homes):
    from keras_fer.cli import main

    model, path = saved
    entry = zoo.publish(model, "mini_xception.half", bundle=True)
    folder = homes / "package" / "files" / "mini_xception.half"
    keras_file = folder / entry.keras_file
    assert entry.weights_storage["dtype"] == "float16"
    assert compact.stored_dtypes(keras_file) == {"float16": model.count_params()}
    assert entry.files[entry.keras_file] == store.file_record(keras_file)  # the stored file
    assert entry.weights_storage["bytes"] == keras_file.stat().st_size
    card = json.loads((folder / "model_card.json").read_text())
    assert card["model"]["weights_storage"] == entry.weights_storage
    assert "- weights: stored as float16" in (folder / "model_card.md").read_text()
    assert "weights: stored as float16" in zoo.describe("mini_xception.half").summary()
    assert zoo.describe("mini_xception.half") == entry
    loaded = zoo.load("mini_xception.half")
    assert {v.dtype for v in loaded.weights} == {"float32"}
    # Turned off, and the default of a release outside the package: float32 as Keras saves.
    entry = zoo.publish(model, "mini_xception.full", bundle=True, weights_dtype="float32")
    assert entry.weights_storage == {}
    assert compact.stored_dtypes(homes / "package" / "files" / "mini_xception.full"
                                 / entry.keras_file) == {"float32": model.count_params()}
    assert "weights:" not in (homes / "package" / "files" / "mini_xception.full"
                              / "model_card.md").read_text()
    with pytest.raises(ValueError, match="weights_dtype must be one of float32, float16"):
        zoo.publish(model, "mini_xception.other", bundle=True, weights_dtype="bfloat16")
    # The command line takes the same choice.
    assert main(["zoo", "publish", str(path), "--name", "mini_xception.cli", "--bundle",
                 "--weights-dtype", "float32"]) == 0
    assert zoo.describe("mini_xception.cli").weights_storage == {}


def test_release_outside_the_package_keeps_float32_unless_asked(saved, homes):
    import tensorflow as tf

    model, _ = saved
    entry = zoo.publish(model, "mini_xception.out", out_dir=homes / "release")
    assert entry.weights_storage == {}
    folder = homes / "release" / "models" / "mini_xception.half16"
    entry = zoo.publish(model, "mini_xception.half16", out_dir=homes / "release",
                        weights_dtype="float16")
    assert compact.stored_dtypes(folder / entry.keras_file) == {"float16": model.count_params()}
    # The SavedModel serves the stored (float16-rounded) weights, as zoo.load does.
    served = tf.saved_model.load(str(folder / entry.serving_dir))
    out = served.signatures["serve_preprocessed"](pixels=tf.constant(_pixels()))
    loaded = load_model(str(folder / entry.keras_file))
    np.testing.assert_allclose(out["probabilities"].numpy(),
                               tf.nn.softmax(loaded(_pixels(), training=False)).numpy(),
                               atol=1e-6, rtol=0)


def test_compact_release_in_place(saved, homes):
    model, _ = saved
    before = zoo.publish(model, "mini_xception.old", bundle=True, weights_dtype="float32")
    folder = homes / "package" / "files" / "mini_xception.old"
    card_before = json.loads((folder / "model_card.json").read_text())
    check = {"images": _pixels(8), "labels": np.array([0, 1, 2, 0, 1, 2, 0, 1]),
             "data": "eight test images"}
    after = compact_release("mini_xception.old", check=check)
    assert after.weights_storage["dtype"] == "float16"
    assert after.weights_storage["data_check"]["images"] == 8
    assert {"accuracy_float32", "accuracy_float16"} <= set(after.weights_storage["data_check"])
    assert after.files[after.keras_file]["bytes"] < before.files[before.keras_file]["bytes"]
    assert ZooEntry.from_json(homes / "package" / "entries" / "mini_xception.old.json") == after
    for filename, info in after.files.items():  # every file matches the new entry
        store.verify(folder / filename, info, after.name, filename)
    card = json.loads((folder / "model_card.json").read_text())
    assert card["model"]["weights_storage"] == after.weights_storage
    assert {k: v for k, v in card["model"].items() if k != "weights_storage"} == \
        {k: v for k, v in card_before["model"].items() if k != "weights_storage"}
    assert "on 8 images (eight test images)" in (folder / "model_card.md").read_text()
    assert {p.name for p in homes.joinpath("package", "files").iterdir()} == {
        "mini_xception.old"}  # no temporary folder left
    assert compact_release("mini_xception.old") == after  # already float16: as it is
    assert {v.dtype for v in zoo.load("mini_xception.old").weights} == {"float32"}


def test_compact_release_refuses_a_savedmodel_release(saved, homes):
    model, _ = saved
    zoo.publish(model, "mini_xception.served", out_dir=homes / "release")
    with pytest.raises(ValueError, match="has a SavedModel"):
        compact_release("mini_xception.served", out_dir=homes / "release")


def test_entries_without_weights_storage_still_load():
    entry = ZooEntry(name="mini_xception.x", arch="mini_xception", input_shape=(24, 24, 1),
                     class_names=CLASSES)
    data = entry.to_dict()
    del data["weights_storage"]  # an entry written before the field existed
    assert ZooEntry.from_dict(data) == entry and entry.weights_storage == {}
    with pytest.raises(ValueError, match="weights_storage must be"):
        ZooEntry(**{**data, "weights_storage": {"dtype": "int8"}})


def test_recipe_takes_the_option():
    from keras_fer.recipes import zoo_checkpoints

    args = zoo_checkpoints.parse_args(["--models", "resnet18.fer2013", "--bundle",
                                       "--weights-dtype", "float32"])
    assert args.weights_dtype == "float32"
    assert zoo_checkpoints.parse_args(["--models", "resnet18.fer2013", "--publish",
                                       "x"]).weights_dtype is None
    with pytest.raises(SystemExit):
        zoo_checkpoints.parse_args(["--models", "resnet18.fer2013", "--weights-dtype",
                                    "float16"])
