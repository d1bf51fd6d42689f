import numpy as np
import pytest

import keras

from keras_fer.models import FERClassifier, create_model, list_architectures, register_architecture
from keras_fer.testing import run_model_test


def _tiny_backbone(input_shape):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    return keras.Model(inputs, x, name="tiny")


def test_classifier_normalises_inside_and_round_trips():
    backbone = _tiny_backbone((8, 8, 3))
    model = FERClassifier(backbone, num_classes=7, mean=(0.2, 0.4, 0.6), std=(0.5, 0.25, 0.1))
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    # Independent reference: normalise by hand, then backbone, pool and dense.
    norm = (x / 255.0 - np.array([0.2, 0.4, 0.6])) / np.array([0.5, 0.25, 0.1])
    feats = backbone(norm.astype("float32")).numpy().mean(axis=(1, 2))
    dense = model.get_layer("predictions")
    w, b = dense.get_weights()
    np.testing.assert_allclose(model(x).numpy(), feats @ w + b, atol=1e-4, rtol=1e-4)
    assert model.class_names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert model.preprocessing["mean"] == [0.2, 0.4, 0.6]
    restored = run_model_test(model, x)
    assert restored is not None


def test_classifier_grey_takes_rgb_statistics_as_their_average():
    model = FERClassifier(_tiny_backbone((8, 8, 1)), num_classes=3, mean=(0.3, 0.6, 0.9),
                          std=(0.5,))
    assert model.mean == (0.6,)
    assert model.class_names == ["0", "1", "2"]


@pytest.mark.parametrize("kwargs, word", [({"pooling": "max"}, "pooling"),
                                          ({"dropout": 1.0}, "dropout"),
                                          ({"class_names": ["a"]}, "class_names"),
                                          ({"mean": (0.1, 0.2)}, "mean")])
def test_classifier_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        FERClassifier(_tiny_backbone((8, 8, 3)), num_classes=7, **kwargs)


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        create_model("nope")

    @register_architecture("tiny_test_arch", family="test", default_input_shape=(8, 8, 1))
    def _build(num_classes, input_shape):
        return FERClassifier(_tiny_backbone(input_shape), num_classes)

    assert "tiny_test_arch" in list_architectures("tiny_*")
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("tiny_test_arch", family="t", default_input_shape=(8, 8, 1))(_build)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("tiny_test_arch", num_classes=1)
    with pytest.raises(ValueError, match="input_shape"):
        create_model("tiny_test_arch", input_shape=(8, 8, 2))
    assert create_model("tiny_test_arch", num_classes=5).output_shape == (None, 5)


@pytest.mark.parametrize("arch, options", [
    ("mini_xception", {"width": 0.5}),
    ("resnet18", {"attention": "hfc", "width_multiplier": 0.25}),
])
def test_empty_batch_gives_empty_logits(arch, options):
    """TensorFlow's CPU convolutions return an empty batch unchanged (wrong shape), so a model
    called on 0 images failed with 'expected axis -1 of input shape to have value 8'."""
    import tensorflow as tf

    model = create_model(arch, num_classes=7, input_shape=(48, 48, 1), **options)
    out = model(np.zeros((0, 48, 48, 1), np.float32))
    assert tuple(out.shape) == (0, 7)
    traced = tf.function(lambda x: model(x, training=False))
    assert tuple(traced(tf.zeros((0, 48, 48, 1))).shape) == (0, 7)
    # Non-empty batches are untouched.
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype("float32")
    assert tuple(model(x).shape) == (2, 7)
    np.testing.assert_allclose(model(x[:1]).numpy(), model(x).numpy()[:1], atol=1e-5)
