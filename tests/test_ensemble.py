"""``keras_fer.models.EnsembleClassifier``: flip TTA and ensembles as one model.

The reference for every number is a NumPy computation from the members' own logits (each
member called separately, the mirror made by NumPy), never the code under test.
"""

import argparse
import json
import os

import numpy as np
import pytest

import keras

from keras_fer.models import EnsembleClassifier, create_model, flip_tta, load_model

SHAPE = (32, 32, 1)
INFERENCE_ONLY = "an ensemble is for inference; fine-tune a member"


def _members(shape=SHAPE, seed=0):
    keras.utils.set_random_seed(seed)
    resnet = create_model("resnet18", input_shape=shape, width_multiplier=0.25)
    xception = create_model("mini_xception", input_shape=shape, width=0.5)
    # Weights away from their initial values (a sharp head), so that the members disagree
    # and a wrong average or a lost weight shows in the outputs.
    rng = np.random.default_rng(seed)
    for model in (resnet, xception):
        dense = model.get_layer("predictions")
        dense.kernel.assign(rng.normal(0, 0.5, dense.kernel.shape).astype("float32"))
    return resnet, xception


@pytest.fixture(scope="module")
def members():
    return _members()


@pytest.fixture(scope="module")
def ensemble(members):
    return EnsembleClassifier(list(members), flip=True)


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(1).uniform(0, 255, (3,) + SHAPE).astype("float32")


def _softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _expected(members, x, flip):
    """log of the mean softmax over members and views, from each member's own logits."""
    views = [x, np.ascontiguousarray(x[:, :, ::-1])] if flip else [x]
    probs = [_softmax(m(v, training=False)) for m in members for v in views]
    return np.log(np.mean(probs, axis=0))


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("count", [1, 2])
def test_outputs_are_the_log_of_the_mean_probability(members, pixels, flip, count):
    model = EnsembleClassifier(list(members[:count]), flip=flip)
    got = np.asarray(model(pixels), np.float64)
    expected = _expected(members[:count], pixels, flip)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.exp(got).sum(-1), 1.0, atol=1e-5)  # logits of probabilities
    assert model.arch == "ensemble" and model.arch_options["flip"] is flip
    assert [m["arch"] for m in model.arch_options["members"]] == \
        ["resnet18", "mini_xception"][:count]
    # A mirror changes a single model's answer: flip TTA is not the identity here.
    if flip and count == 1:
        assert np.abs(got - _expected(members[:1], pixels, False)).max() > 1e-3


def test_flip_tta_is_a_one_member_flip_ensemble(members, pixels):
    tta = flip_tta(members[0])
    assert len(tta.members) == 1 and tta.flip
    np.testing.assert_allclose(tta(pixels), _expected(members[:1], pixels, True), atol=1e-5)


def test_carries_what_the_zoo_and_the_app_read(members, ensemble):
    first = members[0]
    assert ensemble.class_names == first.class_names and ensemble.num_classes == 7
    assert ensemble.image_shape == SHAPE and ensemble.input_shape == (None,) + SHAPE
    # ResNet normalises with ImageNet's grey statistics, mini-Xception with 0.5: no shared
    # value, so the wrapper reports none of its own; each member's is in arch_options.
    assert ensemble.mean == (0.0,) and ensemble.std == (1.0,)
    assert [m["mean"] for m in ensemble.arch_options["members"]] == \
        [list(m.mean) for m in members]
    assert flip_tta(first).mean == first.mean
    json.dumps(ensemble.arch_options)  # what a zoo entry stores
    assert ensemble(np.zeros((0,) + SHAPE, "float32")).shape == (0, 7)


def test_passes_the_model_harness(ensemble, pixels):
    from keras_fer.testing import run_model_test

    # .keras round trip (safe mode); no training step (inference only); the SavedModel is
    # checked through the serving export below.
    run_model_test(ensemble, pixels, run_export_check=False, run_training_check=False)


def test_keras_file_round_trip_keeps_members_and_onednn_switch(ensemble, pixels, tmp_path):
    from keras_fer.layers.onednn_safe import is_onednn_safe
    from keras_fer.layers.walk import iter_layers

    def strided_pointwise(model):
        return [layer for layer in iter_layers(model)
                if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1)
                and tuple(layer.strides) != (1, 1)]

    path = tmp_path / "ensemble.keras"
    ensemble.save(path)
    loaded = load_model(str(path))
    assert type(loaded) is EnsembleClassifier
    np.testing.assert_array_equal(loaded(pixels), ensemble(pixels))
    assert loaded.arch_options == ensemble.arch_options
    assert loaded.class_names == ensemble.class_names
    # The workaround reaches the members' shortcuts (ResNet's and mini-Xception's).
    found = strided_pointwise(loaded)
    assert len(found) >= 2 and all(is_onednn_safe(layer) for layer in found)
    assert len(found) == sum(len(strided_pointwise(m)) for m in ensemble.members)


def test_serving_export_tflite_and_the_app_compute_the_same(ensemble, pixels, tmp_path):
    import tensorflow as tf

    from keras_fer.app import Predictor
    from keras_fer.zoo.serving import export_serving

    expected = _expected(ensemble.members, pixels, True)
    served = tf.saved_model.load(str(export_serving(ensemble, tmp_path / "serving")))
    out = served.signatures["serve_preprocessed"](pixels=tf.constant(pixels))
    np.testing.assert_allclose(out["probabilities"].numpy(), np.exp(expected), atol=1e-5)
    assert out["class_id"].numpy().tolist() == expected.argmax(-1).tolist()
    # The app converts with keras_fer.app.tflite (its own check against Keras on a probe
    # batch passes, or backend="tflite" would raise) and softmaxes the outputs.
    predictor = Predictor(ensemble, backend="tflite")
    assert predictor.backend == "tflite" and not predictor.outputs_probabilities
    np.testing.assert_allclose(predictor.tflite(pixels), expected, atol=1e-4)
    np.testing.assert_allclose(predictor.probabilities(pixels), np.exp(expected), atol=1e-5)


def test_members_must_agree(members):
    resnet, xception = members
    other_shape = create_model("mini_xception", input_shape=(24, 24, 1), width=0.5)
    with pytest.raises(ValueError, match=r"members\[1\].*takes input \(24, 24, 1\).*"
                                         r"\(32, 32, 1\)"):
        EnsembleClassifier([resnet, other_shape])
    fewer = create_model("mini_xception", num_classes=3, input_shape=SHAPE, width=0.5)
    with pytest.raises(ValueError, match=r"members\[1\].*has 3 classes.*has 7"):
        EnsembleClassifier([resnet, fewer])
    renamed = create_model("mini_xception", input_shape=SHAPE, width=0.5)
    renamed.class_names = list(reversed(resnet.class_names))
    with pytest.raises(ValueError, match="same class names in the same order"):
        EnsembleClassifier([resnet, renamed])
    with pytest.raises(ValueError, match="at least one member"):
        EnsembleClassifier([])
    with pytest.raises(ValueError, match="same model object"):
        EnsembleClassifier([resnet, resnet])
    with pytest.raises(ValueError, match="itself an ensemble"):
        EnsembleClassifier([flip_tta(resnet), xception])
    with pytest.raises(ValueError, match="must be a keras-fer FERClassifier"):
        EnsembleClassifier([keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten()])])
    with pytest.raises(ValueError, match="flip must be True or False"):
        EnsembleClassifier([resnet], flip="yes")


def test_members_of_the_same_name_are_told_apart(tmp_path, pixels):
    a, b = _members(seed=2)
    a.name = b.name = "same"
    model = EnsembleClassifier([a, b])
    assert [m.name for m in model.members] == ["same", "same_1"]
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(load_model(str(tmp_path / "m.keras"))(pixels), model(pixels))


def test_training_and_new_heads_are_refused(ensemble, pixels, tmp_path):
    from keras_fer.evaluation import grad_cam
    from keras_fer.training.warm_start import load_initial_model
    from keras_fer.zoo import with_new_head

    labels = np.zeros((len(pixels), 7), "float32")
    with pytest.raises(ValueError, match=INFERENCE_ONLY):
        ensemble.fit(pixels, labels, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=INFERENCE_ONLY):
        with_new_head(ensemble, 3)
    path = tmp_path / "ensemble.keras"
    ensemble.save(path)
    for classes in (7, 3):  # the same head, or a new one
        with pytest.raises(ValueError, match=INFERENCE_ONLY):
            load_initial_model(str(path), classes, [str(i) for i in range(classes)])
    with pytest.raises(ValueError, match="no single feature map.*members"):
        grad_cam(ensemble, pixels)
    # Each member stays an ordinary, trainable model.
    assert ensemble.members[0].feature_model() is not None


def test_zoo_checkpoints_final_test_measures_the_flip_model(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from keras_fer.datasets import synthetic
    from keras_fer.datasets.pipeline import make_dataset
    from keras_fer.evaluation import report as report_module
    from keras_fer.recipes import zoo_checkpoints as Z
    from keras_fer.recipes._common import load_dataset

    synthetic.write_fer2013(str(tmp_path / "data"), per_class_train=1, per_class_test=2)
    (model,) = _members(shape=Z.INPUT_SHAPE, seed=3)[:1]
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    args = argparse.Namespace(data_root=str(tmp_path / "data"))
    # The plain model's t-SNE pictures are most of the time and none of the point here.
    monkeypatch.setattr(report_module.plots, "tsne_figure",
                        lambda *a, **k: (plt.figure(figsize=(1, 1)), None))
    result = Z.final_test(str(run / "model.keras"), {"dataset": "fer2013"}, args)

    test = load_dataset("fer2013", args.data_root, split=["PublicTest"])
    ds = make_dataset(test, image_size=Z.INPUT_SHAPE[:2], channels=1, batch_size=256,
                      shuffle=False, label_mode="int", normalization={"scale": 1.0})
    x = np.concatenate([batch.numpy() for batch, _ in ds])
    labels = test.labels()
    assert result["images"] == len(labels) == 14
    plain = _expected([model], x, False).argmax(-1)
    flipped = _expected([model], x, True).argmax(-1)
    assert result["accuracy"] == pytest.approx(np.mean(plain == labels))
    assert result["flip_tta_accuracy"] == pytest.approx(np.mean(flipped == labels))
    saved = load_model(result["flip_tta_model"])
    assert type(saved) is EnsembleClassifier and saved.flip
    np.testing.assert_allclose(saved(x), _expected([model], x, True), atol=1e-5)


def test_zoo_ensemble_command_builds_evaluates_and_publishes(tmp_path, monkeypatch, capsys):
    from keras_fer import zoo
    from keras_fer.cli import main
    from keras_fer.datasets import synthetic

    monkeypatch.setenv("KERAS_FER_HOME", str(tmp_path / "home"))
    root = synthetic.write_ckplus48(str(tmp_path / "data"), subjects=2, frames=2)
    bundled = zoo.load("mini_xception.ckplus48")
    (other,) = _members(shape=(48, 48, 1), seed=4)[:1]
    other.class_names = list(bundled.class_names)
    other.save(tmp_path / "other.keras")
    members = f"zoo:mini_xception.ckplus48,{tmp_path / 'other.keras'}"
    out = tmp_path / "ens.keras"
    argv = ["zoo", "ensemble", "--members", members, "--flip", "--out", str(out),
            "--dataset", "ckplus48", "--root", root, "--name", "ensemble.ckplus48_test"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "on 28 images" in stdout and "published ensemble.ckplus48_test" in stdout
    report = json.loads((tmp_path / "ens_evaluation" / "report.json").read_text())
    assert "no single feature map" in report["gradcam"]

    entry = zoo.describe("ensemble.ckplus48_test")
    assert entry.arch == "ensemble" and entry.arch_options["flip"] is True
    assert entry.metrics["accuracy"] == report["accuracy"]
    assert entry.recipe.startswith("keras-fer zoo ensemble --members zoo:mini_xception")
    x = np.random.default_rng(5).uniform(0, 255, (2, 48, 48, 1)).astype("float32")
    expected = _expected([bundled, other], x, True)
    np.testing.assert_allclose(zoo.load(entry.name)(x), expected, atol=1e-5)
    np.testing.assert_allclose(load_model(str(out))(x), expected, atol=1e-5)
    with pytest.raises(ValueError, match=INFERENCE_ONLY):
        zoo.load(entry.name, num_classes=3)
    with pytest.raises(ValueError, match="no untrained form"):
        zoo.load(entry.name, weights=False)
    # Publishing the name again is refused before anything is loaded or evaluated.
    with pytest.raises(SystemExit, match="already exists"):
        main(argv)
