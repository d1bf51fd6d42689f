"""The model zoo (keras_fer.zoo): entries, lookup, hashes, loading, publishing, CLI."""

import hashlib
import io
import json
import os
import shutil
import types
import zipfile

import numpy as np
import pytest

from keras_fer import zoo
from keras_fer.zoo import store
from keras_fer.zoo.entry import ZooEntry

NAME = "mini_xception.tiny"
CLASSES = ["angry", "happy", "neutral"]
METRICS = {"accuracy": 0.625, "num_samples": 40, "weighted": {"precision": 0.6, "f1": 0.61},
           "per_class": {c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 1}
                         for c in CLASSES},
           "confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "model": "x"}


def _tiny_model(seed=0, **options):
    from keras_fer.models import create_model

    model = create_model("mini_xception", num_classes=3, input_shape=(24, 24, 1), **options)
    # Weights away from their initial values, so a load that silently re-initialised
    # anything would show in the predictions.
    rng = np.random.default_rng(seed)
    for v in model.trainable_weights:
        v.assign(v.numpy() + rng.normal(0, 0.05, v.shape).astype("float32"))
    model.class_names = list(CLASSES)
    return model


def _pixels(n=4, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (n, 24, 24, 1)).astype("float32")


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One release in a private KERAS_FER_HOME and an empty private bundled folder."""
    home = tmp_path_factory.mktemp("home")
    bundled = tmp_path_factory.mktemp("bundled")
    evaluation = tmp_path_factory.mktemp("evaluation")
    (evaluation / "confusion_matrix.png").write_bytes(b"\x89PNG not really")
    (evaluation / "confusion_matrix.csv").write_text("a,b\n1,2\n")
    (evaluation / "report.json").write_text(json.dumps(METRICS))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_FER_HOME", str(home))
        mp.setattr(store, "BUNDLED_DIR", bundled)
        model = _tiny_model()
        # A compiled model with optimizer variables: publish must drop this state.
        model.compile(optimizer="adam", loss="mse")
        model.optimizer.build(model.trainable_variables)
        entry = zoo.publish(model, NAME, evaluation_dir=evaluation, dataset="synthetic",
                            protocol="80/20 random split", recipe="keras-fer train --set x=1",
                            description="a test model")
        yield types.SimpleNamespace(home=home, bundled=bundled, model=model, entry=entry,
                                    expected=model(_pixels(), training=False).numpy())


@pytest.fixture
def copy_home(published, tmp_path, monkeypatch):
    """A private copy of the published home (for tests that damage it)."""
    home = tmp_path / "home"
    shutil.copytree(published.home, home)
    monkeypatch.setenv("KERAS_FER_HOME", str(home))
    return home


# -- entries ------------------------------------------------------------------------------

def test_entry_validation_and_json_round_trip(tmp_path):
    entry = ZooEntry(name="resnet18_hfc.ckplus48", arch="resnet18", input_shape=(48, 48, 3),
                     class_names=CLASSES, arch_options={"attention": "hfc"},
                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    path = tmp_path / "e.json"
    path.write_text(entry.to_json())
    again = ZooEntry.from_json(path)
    assert again == entry and not again.pretrained and again.num_classes == 3
    for bad, message in [
            (dict(name="ResNet18"), "name must look like 'arch.tag'"),
            (dict(name="a.b/c"), "name must look like"),
            (dict(input_shape=(48, 48, 2)), "input_shape must be"),
            (dict(mean=(0.5,)), "mean must have one value per input channel (3)"),
            (dict(class_names=["a"]), "class_names must hold at least two"),
            (dict(files={"../x.keras": {"sha256": "0" * 64, "bytes": 1}}), "not a relative path"),
            (dict(files={"x.keras": {"sha256": "abc", "bytes": 1}}), "64 hex digits"),
            (dict(serving_version=0), "serving_version must be an integer >= 1")]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            ZooEntry(**{**entry.to_dict(), **bad})
    with pytest.raises(ValueError, match="unknown entry fields: colour"):
        ZooEntry.from_dict({**entry.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="missing entry fields: arch"):
        ZooEntry.from_dict({k: v for k, v in entry.to_dict().items() if k != "arch"})


def test_publish_writes_layout_entry_and_card(published):
    home, entry = published.home, published.entry
    folder = home / "models" / NAME
    assert (home / "entries" / f"{NAME}.json").is_file()
    expected = {f"{NAME}.keras", "model_card.md", "model_card.json", "confusion_matrix.png",
                "confusion_matrix.csv", f"serving/{NAME}/1/saved_model.pb",
                f"serving/{NAME}/1/variables/variables.index"}
    assert expected <= set(entry.files)
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert on_disk == set(entry.files)
    for rel, info in entry.files.items():  # hashes computed here, independently
        assert info == {"sha256": _sha256(folder / rel), "bytes": (folder / rel).stat().st_size}
    # No optimizer state or compile config in the published .keras file.
    with zipfile.ZipFile(folder / f"{NAME}.keras") as z:
        import h5py

        assert not json.loads(z.read("config.json")).get("compile_config")
        with h5py.File(io.BytesIO(z.read("model.weights.h5"))) as h5:
            assert "optimizer" not in h5
    # The entry carries the config as data.
    assert entry.arch == "mini_xception" and entry.input_shape == (24, 24, 1)
    assert entry.class_names == CLASSES and entry.mean == (0.5,) and entry.std == (0.5,)
    assert entry.arch_options["head"] == "paper"
    assert entry.metrics == {"accuracy": 0.625, "num_samples": 40, "weighted_precision": 0.6,
                             "weighted_f1": 0.61}
    assert entry.recipe == "keras-fer train --set x=1" and entry.dataset == "synthetic"
    assert entry.software["keras"] and entry.created
    card = json.loads((folder / "model_card.json").read_text())
    assert card["evaluation"]["confusion_matrix"] == METRICS["confusion_matrix"]
    assert card["model"]["params"]["total"] == published.model.count_params()
    markdown = (folder / "model_card.md").read_text()
    for text in ("## Intended use", "## Limitations", "| accuracy | 0.6250 |",
                 "![confusion matrix](confusion_matrix.png)", "80/20 random split",
                 "keras-fer train --set x=1", "| happy | 0.500 |"):
        assert text in markdown


def test_list_and_describe(published, tmp_path, monkeypatch):
    assert zoo.list_models() == [NAME]
    assert zoo.list_models("mini_xception.*") == [NAME]
    assert zoo.list_models("vit*") == []
    assert zoo.list_models(pretrained=True) == [NAME]
    assert zoo.list_models(pretrained=False) == []
    # An architecture-only entry in the package folder: listed as not pretrained.
    bundled = tmp_path / "bundled"
    (bundled / "entries").mkdir(parents=True)
    arch_only = ZooEntry(name="vit_tiny.ferplus", arch="vit_tiny", input_shape=(224, 224, 3),
                         class_names=CLASSES, mean=(0.5,) * 3, std=(0.5,) * 3)
    (bundled / "entries" / "vit_tiny.ferplus.json").write_text(arch_only.to_json())
    monkeypatch.setattr(store, "BUNDLED_DIR", bundled)
    assert zoo.list_models() == [NAME, "vit_tiny.ferplus"]
    assert zoo.list_models(pretrained=False) == ["vit_tiny.ferplus"]
    assert zoo.describe(NAME) == published.entry
    assert "classes (3): angry, happy, neutral" in zoo.describe(NAME).summary()
    with pytest.raises(ValueError, match=r"unknown zoo model 'mini_xception.fer2013'.*"
                                         r"Similar: mini_xception.tiny"):
        zoo.describe("mini_xception.fer2013")
    with pytest.raises(ValueError, match="pretrained must be None, True or False"):
        zoo.list_models(pretrained="yes")


def test_load_gives_identical_predictions(published):
    model = zoo.load(NAME)
    np.testing.assert_allclose(model(_pixels(), training=False).numpy(), published.expected,
                               atol=1e-6, rtol=0)
    assert model.class_names == CLASSES and getattr(model, "optimizer", None) is None
    # A path to the same file works too; a file of another architecture does not.
    path = published.home / "models" / NAME / f"{NAME}.keras"
    np.testing.assert_allclose(zoo.load(NAME, weights=str(path))(_pixels(), training=False).numpy(),
                               published.expected, atol=1e-6, rtol=0)


def test_load_weights_path_must_match(published, tmp_path):
    from keras_fer.models import create_model

    other = create_model("mini_xception", num_classes=3, input_shape=(32, 32, 1))
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match=r"input \(32, 32, 1\).*'mini_xception' with input "
                                         r"\(24, 24, 1\)"):
        zoo.load(NAME, weights=str(tmp_path / "other.keras"))
    with pytest.raises(ValueError, match="must be a .keras file"):
        (tmp_path / "w.h5").write_bytes(b"x")
        zoo.load(NAME, weights=str(tmp_path / "w.h5"))
    with pytest.raises(ValueError, match="weights must be True, False or a path"):
        zoo.load(NAME, weights=3)


def test_new_head_keeps_backbone_weights(published):
    original = published.model
    model = zoo.load(NAME, num_classes=5)
    assert model.output_shape == (None, 5) and model.class_names == ["0", "1", "2", "3", "4"]
    assert model.arch == "mini_xception" and model.image_shape == (24, 24, 1)
    changed = []
    for old, new in zip(original.weights, model.weights):
        if tuple(old.shape) == tuple(new.shape):
            if not np.array_equal(old.numpy(), new.numpy()):
                changed.append(new.path)
        else:
            changed.append(new.path)
    # Only what is sized by the class count is new: mini-Xception's class-score conv (the
    # paper's head) and the final Dense.
    assert sorted(changed) == ["head_conv/bias", "head_conv/kernel", "predictions/bias",
                               "predictions/kernel"]
    named = zoo.load(NAME, weights=False, num_classes=2, class_names=["neg", "pos"])
    assert named.class_names == ["neg", "pos"]
    with pytest.raises(ValueError, match="class_names has 3 names for 2 classes"):
        zoo.load(NAME, num_classes=2, class_names=CLASSES)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        zoo.load(NAME, num_classes=1)


def test_weights_false_gives_fresh_model_of_same_architecture(published):
    fresh = zoo.load(NAME, weights=False)
    trained = published.model
    assert fresh.class_names == CLASSES and fresh.arch_options == trained.arch_options
    assert [tuple(w.shape) for w in fresh.weights] == [tuple(w.shape) for w in trained.weights]
    assert [w.path for w in fresh.weights] == [w.path for w in trained.weights]
    assert not np.allclose(fresh(_pixels(), training=False).numpy(), published.expected, atol=1e-3)
    other = zoo.load(NAME, weights=False, num_classes=4)
    assert other.output_shape == (None, 4)


def test_tampered_file_is_refused(copy_home):
    path = copy_home / "models" / NAME / f"{NAME}.keras"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.HashMismatchError) as err:
        zoo.load(NAME)
    message = str(err.value)
    expected = zoo.describe(NAME).files[f"{NAME}.keras"]["sha256"]
    for text in (str(path), f"expected sha256 {expected}",
                 f"got {_sha256(path)}", "delete it and retry"):
        assert text in message


def test_missing_file_error_names_the_places(copy_home, published):
    os.remove(copy_home / "models" / NAME / f"{NAME}.keras")
    with pytest.raises(zoo.MissingFileError) as err:
        zoo.load(NAME)
    message = str(err.value)
    for text in (f"{NAME}.keras not found", str(copy_home / "models" / NAME),
                 str(published.bundled / "files" / NAME), "no url",
                 "keras-fer zoo publish", "KERAS_FER_HOME"):
        assert text in message
    assert isinstance(err.value, FileNotFoundError)


def test_bundled_files_are_found(copy_home, published, tmp_path, monkeypatch):
    bundled = tmp_path / "bundled"
    (bundled / "files").mkdir(parents=True)
    shutil.move(copy_home / "models" / NAME, bundled / "files" / NAME)
    shutil.move(copy_home / "entries", bundled / "entries")
    monkeypatch.setattr(store, "BUNDLED_DIR", bundled)
    assert zoo.list_models() == [NAME]
    np.testing.assert_allclose(zoo.load(NAME)(_pixels(), training=False).numpy(),
                               published.expected, atol=1e-6, rtol=0)


def _with_url(home, url):
    path = home / "entries" / f"{NAME}.json"
    data = json.loads(path.read_text())
    data["url"] = url
    path.write_text(json.dumps(data))


def test_url_download_into_cache(copy_home, published, tmp_path):
    release = tmp_path / "release"
    shutil.move(copy_home / "models" / NAME, release)
    _with_url(copy_home, release.as_uri())
    model = zoo.load(NAME)  # fetched from file://, verified, kept in the cache
    np.testing.assert_allclose(model(_pixels(), training=False).numpy(), published.expected,
                               atol=1e-6, rtol=0)
    cached = copy_home / "models" / NAME / f"{NAME}.keras"
    assert _sha256(cached) == published.entry.files[f"{NAME}.keras"]["sha256"]
    # A corrupt download is refused and leaves nothing behind in the cache.
    os.remove(cached)
    (release / f"{NAME}.keras").write_bytes(b"not the model")
    with pytest.raises(zoo.HashMismatchError, match="downloaded from file://"):
        zoo.load(NAME)
    assert os.listdir(cached.parent) == []


def test_url_offline_says_so(copy_home):
    os.remove(copy_home / "models" / NAME / f"{NAME}.keras")
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _with_url(copy_home, f"http://127.0.0.1:{port}/zoo/{NAME}")
    with pytest.raises(zoo.MissingFileError, match=r"downloading from http://127.0.0.1:\d+/zoo/"
                                                   r"mini_xception.tiny failed .*offline"):
        zoo.load(NAME)


def test_publish_refuses_to_overwrite(published):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zoo.publish(published.model, NAME)
    with pytest.raises(ValueError, match="name must look like 'arch.tag'"):
        zoo.publish(published.model, "no_dot")


def test_publish_is_atomic(copy_home, published, monkeypatch):
    """A crash in the middle of writing leaves no partial artifact: a new name does not
    appear at all, and a crashed overwrite keeps the previous release intact."""
    from keras_fer.zoo import serving

    def crash(model, export_dir, version=1, **kwargs):
        os.makedirs(os.path.join(export_dir, str(version)))
        with open(os.path.join(export_dir, str(version), "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise RuntimeError("simulated crash during the SavedModel export")

    monkeypatch.setattr(serving, "export_serving", crash)
    def snapshot():  # every path, folders included, with the bytes of the files
        return {p: p.read_bytes() if p.is_file() else None for p in copy_home.rglob("*")}

    before = snapshot()
    for name, overwrite in (("mini_xception.crash", False), (NAME, True)):
        with pytest.raises(RuntimeError, match="simulated crash"):
            zoo.publish(published.model, name, out_dir=str(copy_home), overwrite=overwrite)
        assert snapshot() == before  # nothing new, nothing changed, no temporary leftovers
    assert zoo.list_models() == [NAME]
    np.testing.assert_allclose(zoo.load(NAME)(_pixels(), training=False).numpy(),
                               published.expected, atol=1e-6, rtol=0)


def test_bundle_and_load_serving_from_keras_only(published, tmp_path, monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("KERAS_FER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(store, "BUNDLED_DIR", tmp_path / "package")
    entry = zoo.publish(published.model, "mini_xception.bundled", bundle=True)
    assert (tmp_path / "package" / "entries" / "mini_xception.bundled.json").is_file()
    assert not entry.serving_files and entry.pretrained  # the wheel carries no SavedModel
    assert entry.weights_storage["dtype"] == "float16"  # bundled weights: float16 by default
    served = zoo.load_serving("mini_xception.bundled")
    x = _pixels()
    probabilities = served.signatures["serve_preprocessed"](pixels=tf.constant(x))["probabilities"]
    stored = tf.nn.softmax(zoo.load("mini_xception.bundled")(x, training=False)).numpy()
    np.testing.assert_allclose(probabilities.numpy(), stored, atol=1e-5, rtol=0)
    np.testing.assert_allclose(stored, tf.nn.softmax(published.expected).numpy(),
                               atol=entry.weights_storage["max_softmax_diff"] + 1e-3, rtol=0)
    exported = list((tmp_path / "home" / "models" / "mini_xception.bundled" / "exported")
                    .glob("*/mini_xception.bundled/1/saved_model.pb"))
    assert len(exported) == 1
    mtime = exported[0].stat().st_mtime_ns
    zoo.load_serving("mini_xception.bundled")  # the second call reuses the export
    assert exported[0].stat().st_mtime_ns == mtime


def test_load_serving_uses_published_savedmodel(published):
    import tensorflow as tf

    served = zoo.load_serving(NAME)
    assert {"serving_default", "serve_preprocessed", "class_names"} <= set(served.signatures)
    names = served.signatures["class_names"]()["class_names"].numpy()
    assert [n.decode() for n in names] == CLASSES
    out = served.signatures["serve_preprocessed"](pixels=tf.constant(_pixels()))
    np.testing.assert_allclose(out["probabilities"].numpy(),
                               tf.nn.softmax(published.expected).numpy(), atol=1e-5, rtol=0)
    assert not (published.home / "models" / NAME / "exported").exists()


def test_summarize_metrics():
    report = {"accuracy": 0.5, "flag": True, "weighted": {"f1": 0.4}, "params": {"total": 10},
              "per_class": {"a": {"f1": 1.0}}, "model": "m", "train_seconds": None}
    assert zoo.summarize_metrics(report) == {"accuracy": 0.5, "weighted_f1": 0.4,
                                             "params_total": 10}
    # A number measured once on a test split, nested as zoo_checkpoints --final-test writes it.
    final = {"accuracy": 0.6, "public_test": {"images": 9, "accuracy": 0.5, "report": "r.md",
                                              "per_class_recall": {"angry": 0.25}}}
    assert zoo.summarize_metrics(final) == {
        "accuracy": 0.6, "public_test_images": 9, "public_test_accuracy": 0.5,
        "public_test_per_class_recall_angry": 0.25}


# -- command line ---------------------------------------------------------------------------

def test_cli_list_describe(published, capsys):
    from keras_fer.cli import main

    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert NAME in out and "mini_xception" in out and "0.6250" in out and "yes" in out
    assert main(["zoo", "list", "vit*", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["zoo", "describe", NAME, "--json"]) == 0
    assert ZooEntry.from_dict(json.loads(capsys.readouterr().out)) == published.entry
    assert main(["zoo", "describe", NAME]) == 0
    assert "recipe: keras-fer train --set x=1" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="keras-fer zoo describe: unknown zoo model 'nope.x'"):
        main(["zoo", "describe", "nope.x"])


def test_cli_publish(published, tmp_path, capsys, monkeypatch):
    from keras_fer.cli import main

    run = tmp_path / "run"
    (run / "evaluation").mkdir(parents=True)
    published.model.save(run / "model.keras")
    (run / "config.json").write_text("{}")
    (run / "evaluation" / "report.json").write_text(json.dumps(METRICS))
    out = tmp_path / "release"
    assert main(["zoo", "publish", str(run / "model.keras"), "--name", "mini_xception.cli",
                 "--dataset", "synthetic", "--protocol", "random", "--out", str(out),
                 "--version", "3", "--licence", "test only"]) == 0
    printed = capsys.readouterr().out
    assert "published mini_xception.cli" in printed and "mini_xception.cli.keras" in printed
    entry = ZooEntry.from_json(out / "entries" / "mini_xception.cli.json")
    assert entry.serving_version == 3 and entry.licence == "test only"
    assert entry.metrics["accuracy"] == 0.625  # from the run's evaluation/report.json
    assert entry.recipe == f"keras-fer train --config {run / 'config.json'}"
    assert (out / "models" / "mini_xception.cli" / "serving" / "mini_xception.cli" / "3"
            / "saved_model.pb").is_file()
    # The release folder is a KERAS_FER_HOME of its own.
    monkeypatch.setenv("KERAS_FER_HOME", str(out))
    np.testing.assert_allclose(zoo.load("mini_xception.cli")(_pixels(), training=False).numpy(),
                               published.expected, atol=1e-6, rtol=0)
    with pytest.raises(SystemExit, match="already exists"):
        main(["zoo", "publish", str(run / "model.keras"), "--name", "mini_xception.cli",
              "--out", str(out)])


def test_inference_copy_computes_in_float32_whatever_the_training_policy():
    import keras

    from keras_fer.models import create_model
    from keras_fer.zoo.publish import inference_copy

    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        trained = create_model("resnet18", num_classes=3, input_shape=(32, 32, 1),
                               width_multiplier=0.25)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert "mixed_bfloat16" in json.dumps(trained.get_config())
    copy = inference_copy(trained)
    assert "mixed_" not in json.dumps(copy.get_config())
    reference = create_model("resnet18", num_classes=3, input_shape=(32, 32, 1),
                             width_multiplier=0.25)
    reference.set_weights(trained.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
    out = keras.ops.convert_to_numpy(copy(x))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(reference(x)), atol=1e-5)
