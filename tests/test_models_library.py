"""The library CNN families (keras-hub, keras.applications) and the Neural Resizer front end.

Every family goes through the shared harness (``.keras`` round trip, SavedModel export, one
training step) at the smallest input it accepts; timm fidelity is in
``test_timm_fidelity_library.py``.
"""

import numpy as np
import pytest

import keras

from keras_fer.models import (
    FERClassifier,
    create_model,
    get_architecture,
    list_architectures,
    register_architecture,
)
from keras_fer.models.library_cnns import FAMILIES
from keras_fer.models.library_cnns.applications import ZeroPaddedAveragePooling2D
from keras_fer.testing import check_gradients, run_layer_test, run_model_test

# Parameter counts with a 7-class head at each architecture's registry test input
# (``spec.test_options``, the smallest input it takes). Keras counts BN moving statistics as
# parameters. Cross-checks: keras.applications' published no-top counts (ResNet50 23,587,712;
# InceptionV3 21,802,784; MobileNetV2 2,257,984 with an RGB stem, 576 fewer for grey) plus the
# head (features * 7 + 7). The harness runs for each in test_models_registry.py (slow).
PARAMS = {
    "vgg16": 14_718_279,
    "vgg19": 20_026_823,
    "resnet50d": 23_594_279,
    "efficientnet_b0": 4_058_531,
    "xception": 20_875_247,
    "inception_v3": 21_802_784 + 2048 * 7 + 7,
    "mobilenetv2_keras": 2_257_984 - 576 + 1280 * 7 + 7,
    "resnet50_keras": 23_587_712 + 2048 * 7 + 7,
}


def _test_shape(arch):
    return get_architecture(arch).test_options["input_shape"]


def _images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch,) + tuple(shape)).astype(
        "float32")


def test_all_families_registered_with_their_timm_names():
    assert set(PARAMS) <= set(list_architectures())
    assert set(FAMILIES) == set(PARAMS)
    expected_timm = {"vgg16": "vgg16", "vgg19": "vgg19", "resnet50d": "resnet50d",
                     "efficientnet_b0": "efficientnet_b0", "xception": "legacy_xception",
                     "inception_v3": "inception_v3", "mobilenetv2_keras": None,
                     "resnet50_keras": None}
    for arch, timm_name in expected_timm.items():
        assert get_architecture(arch).timm_name == timm_name, arch
        assert FAMILIES[arch].timm_arch == timm_name, arch
    assert get_architecture("inception_v3").default_input_shape == (299, 299, 3)


@pytest.mark.slow  # ~3 CPU minutes: SavedModel tracing of the full network
def test_stock_mobilenetv2_passes_harness_with_dropout_and_free_batch():
    shape, params = _test_shape("mobilenetv2_keras"), PARAMS["mobilenetv2_keras"]
    model = create_model("mobilenetv2_keras", input_shape=shape, dropout=0.3)
    assert isinstance(model, FERClassifier)
    assert model.arch == "mobilenetv2_keras" and model.count_params() == params
    assert model.arch_options == {"alpha": 1.0, "dropout": 0.3}
    assert model.get_layer("head_dropout").rate == 0.3
    assert model.input_shape == (None,) + shape and model.output_shape == (None, 7)
    for batch in (1, 3):
        assert model.predict(_images(shape, batch=batch), verbose=0).shape == (batch, 7)
    run_model_test(model, _images(shape))


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(PARAMS))
def test_parameter_count(arch):
    assert create_model(arch, input_shape=_test_shape(arch)).count_params() == PARAMS[arch]


def test_vgg19_builds_and_predicts():
    # The fast stand-in for the slow harness test (resnet50_keras is built below and the
    # other families in the fast timm fidelity tests): batch of one, logits, parameters.
    shape, params = _test_shape("vgg19"), PARAMS["vgg19"]
    model = create_model("vgg19", input_shape=shape)
    assert model.count_params() == params
    logits = model.predict(_images(shape, batch=1), verbose=0)
    assert logits.shape == (1, 7) and np.all(np.isfinite(logits))


def test_default_normalisation_per_family():
    half, imagenet = (0.5,) * 3, (0.485, 0.456, 0.406)
    for arch, mean in {"xception": half, "inception_v3": half, "mobilenetv2_keras": half,
                       "vgg16": imagenet, "resnet50d": imagenet, "efficientnet_b0": imagenet,
                       "resnet50_keras": (123.68 / 255, 116.779 / 255, 103.939 / 255)}.items():
        assert get_architecture(arch).mean == pytest.approx(mean), arch


@pytest.mark.parametrize("arch, shape, word", [
    ("inception_v3", (64, 64, 3), "input_shape"),
    ("vgg16", (16, 16, 3), "input_shape"),
    ("xception", (31, 40, 1), ">= 32"),
])
def test_too_small_input_is_a_clear_error(arch, shape, word):
    with pytest.raises(ValueError, match=word):
        create_model(arch, input_shape=shape)


@pytest.mark.parametrize("arch, kwargs, word", [
    ("efficientnet_b0", {"drop_connect_rate": 1.0}, "drop_connect_rate"),
    ("mobilenetv2_keras", {"alpha": 0}, "alpha"),
    ("resnet50_keras", {"weights_bgr": True}, "weights_bgr"),
    ("resnet50_keras", {"weights_bgr": "yes", "weights": "w.h5"}, "weights_bgr"),
    ("mobilenetv2_keras", {"weights": 3}, "weights must be"),
    ("mobilenetv2_keras", {"weights": "/nonexistent/x.weights.h5"}, "does not exist"),
    ("mobilenetv2_keras", {"weights": "/nonexistent/model.safetensors"}, "timm counterpart"),
    ("efficientnet_b0", {"weights": "/nonexistent/model.safetensors"}, "does not exist"),
    ("efficientnet_b0", {"weights": "model.pt"}, "is not a timm .safetensors file"),
])
def test_bad_arguments_name_the_argument(arch, kwargs, word):
    # Checked before the (slow) backbone build.
    with pytest.raises(ValueError, match=word):
        create_model(arch, input_shape=(32, 32, 3), **kwargs)


def test_inception_count_include_pad_must_be_a_bool():
    with pytest.raises(ValueError, match="count_include_pad"):
        create_model("inception_v3", input_shape=(75, 75, 3), count_include_pad="yes")


def test_unknown_option_is_rejected():
    with pytest.raises(TypeError, match="attention"):
        create_model("vgg16", input_shape=(32, 32, 3), attention="hfc")


def test_keras_weights_file_round_trip_and_grey_twin(tmp_path):
    # A backbone saved as .weights.h5 reloads exactly; a grey model takes the same RGB file
    # with the stem summed over the channels, i.e. equals the RGB model on replicated grey.
    rgb = create_model("mobilenetv2_keras", input_shape=(32, 32, 3))
    path = str(tmp_path / "backbone.weights.h5")
    rgb.backbone.save_weights(path)
    again = create_model("mobilenetv2_keras", input_shape=(32, 32, 3), weights=path)
    x = _images((32, 32, 3))
    np.testing.assert_allclose(again.backbone.predict(x, verbose=0),
                               rgb.backbone.predict(x, verbose=0), atol=1e-5)

    grey = create_model("mobilenetv2_keras", input_shape=(32, 32, 1), weights=path)
    g = _images((32, 32, 1))
    # Same normalised input on both sides (mean/std 0.5 for every channel).
    gn, rgbn = g / 127.5 - 1.0, np.repeat(g, 3, axis=-1) / 127.5 - 1.0
    np.testing.assert_allclose(grey.backbone.predict(gn, verbose=0),
                               rgb.backbone.predict(rgbn, verbose=0), atol=1e-4, rtol=1e-4)


def test_keras_weights_file_of_another_backbone_is_a_clear_error(tmp_path):
    path = str(tmp_path / "vgg.weights.h5")
    create_model("vgg16", input_shape=(32, 32, 3)).backbone.save_weights(path)
    with pytest.raises(ValueError, match="cannot load Keras weights file .*vgg.weights.h5"):
        create_model("mobilenetv2_keras", input_shape=(32, 32, 1), weights=path)


def test_resnet50_keras_caffe_normalisation_and_weights_bgr(tmp_path):
    model = create_model("resnet50_keras", input_shape=(32, 32, 3))
    # Keras' "caffe" mode: x - 255 * mean, no division (std 1/255 on the 0-1 scale).
    x = _images((32, 32, 3), batch=1)
    np.testing.assert_allclose(model.get_layer("normalize")(x).numpy(),
                               x - np.array([123.68, 116.779, 103.939]), atol=1e-3)
    path = str(tmp_path / "resnet.weights.h5")
    model.backbone.save_weights(path)
    flipped = create_model("resnet50_keras", input_shape=(32, 32, 3), weights=path,
                           weights_bgr=True)
    stem = model.backbone.get_layer("conv1_conv").kernel.numpy()
    np.testing.assert_array_equal(flipped.backbone.get_layer("conv1_conv").kernel.numpy(),
                                  stem[:, :, ::-1, :])
    assert "weights_bgr" not in flipped.arch_options  # provenance, not architecture


def _zero_padded_average_pool(x, k):
    """NumPy reference: zero padding of k // 2, then the mean of every k x k window."""
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros_like(x)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i, j] = padded[:, i:i + k, j:j + k].sum(axis=(1, 2)) / (k * k)
    return out


def test_zero_padded_average_pooling_counts_the_padding():
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype("float32")
    layer = run_layer_test(ZeroPaddedAveragePooling2D, {"pool_size": 3}, x,
                           expected_output_shape=(2, 5, 7, 3))
    np.testing.assert_allclose(layer(x).numpy(), _zero_padded_average_pool(x, 3), atol=1e-6)
    # Corner of a constant image: 4 real pixels of 9 (Keras' "same" pooling would give 1).
    assert float(layer(np.ones((1, 4, 4, 1), "float32"))[0, 0, 0, 0]) == pytest.approx(4 / 9)
    check_gradients(layer, x[:1, :3, :4, :2].astype("float64"))
    with pytest.raises(ValueError, match="pool_size"):
        ZeroPaddedAveragePooling2D(pool_size=2)


# --- Neural Resizer in front ----------------------------------------------------------------

def _register_tiny_arch():
    """A registered two-layer architecture, so the resizer mechanics test in seconds."""
    name = "library_test_tiny"
    if name in list_architectures():
        return name

    @register_architecture(name, family="test", default_input_shape=(16, 16, 3))
    def build(num_classes=7, input_shape=(16, 16, 3), dropout=0.0):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
        return FERClassifier(keras.Model(inputs, x, name="tiny_backbone"), num_classes,
                             input_shape, dropout=dropout, arch=name,
                             arch_options={"dropout": dropout})

    return name


@pytest.mark.parametrize("arch, options", [
    (_register_tiny_arch(), {}),
    pytest.param("mobilenetv2_keras", {"alpha": 0.35}, marks=pytest.mark.slow),
])
def test_resizer_front_end_end_to_end(arch, options):
    # 48x48 grey in, NeuralResizer to the backbone's 32x32, logits out; trains jointly and
    # survives .keras / SavedModel round trips (run_model_test).
    model = create_model(arch, input_shape=(48, 48, 1),
                         resizer={"target_size": (32, 32), "filters": 4}, **options)
    assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, 7)
    resizer = model.backbone.get_layer("neural_resizer")
    assert resizer.compute_output_shape((None, 48, 48, 1)) == (None, 32, 32, 1)
    assert model.backbone.layers[-1].input_shape == (None, 32, 32, 1)
    assert model.arch == arch
    assert model.arch_options["resizer"]["target_size"] == [32, 32]
    assert model.arch_options["resizer"]["filters"] == 4
    # Resizer weights are trainable, so the harness' training step must move them too.
    assert any("neural_resizer" in v.path for v in model.trainable_variables)
    assert model.predict(_images((48, 48, 1), batch=1), verbose=0).shape == (1, 7)
    run_model_test(model, _images((48, 48, 1)))


def test_resizer_front_end_wiring_and_rebuild():
    # Independent composition: with the residual branch switched off (zero output conv) and
    # no super-resolution, the model computes
    #   dense(mean_hw(backbone(bilinear_resize((x / 255 - mean) / std))))
    # i.e. the resizer sits after the normalisation and before the arch's backbone.
    import tensorflow as tf

    model = create_model("vgg16", input_shape=(40, 40, 3),
                         resizer={"target_size": (32, 32), "filters": 2, "sr_scale": None})
    resizer = model.backbone.get_layer("neural_resizer")
    for weight in resizer.out_conv.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    x = _images((40, 40, 3))
    normalised = (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    resized = tf.image.resize(normalised.astype("float32"), (32, 32), method="bilinear").numpy()
    inner = model.backbone.layers[-1]
    features = inner.predict(resized, verbose=0).mean(axis=(1, 2))
    kernel, bias = model.get_layer("predictions").get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), features @ kernel + bias,
                               atol=1e-4, rtol=1e-4)

    rebuilt = create_model(model.arch, input_shape=model.image_shape, **model.arch_options)
    assert rebuilt.count_params() == model.count_params()
    assert rebuilt.arch_options == model.arch_options


def test_resizer_default_target_is_the_arch_input_size():
    model = create_model("mobilenetv2_keras", input_shape=(48, 48, 1), resizer=True, alpha=0.35)
    assert model.backbone.get_layer("neural_resizer").target_size == (224, 224)
    assert model.backbone.layers[-1].input_shape == (None, 224, 224, 1)
    assert model.input_shape == (None, 48, 48, 1)


@pytest.mark.parametrize("resizer, word", [("yes", "resizer must be"),
                                           ({"target_size": (0, 32)}, "target_size")])
def test_resizer_bad_arguments(resizer, word):
    with pytest.raises(ValueError, match=word):
        create_model("vgg16", input_shape=(48, 48, 1), resizer=resizer)


def test_resizer_false_or_none_means_no_resizer():
    model = create_model("mobilenetv2_keras", input_shape=(32, 32, 1), resizer=False,
                         alpha=0.35)
    assert not any(layer.name == "neural_resizer" for layer in model.backbone.layers)
    assert isinstance(keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(model)), FERClassifier)
