"""keras-fer's own CNN families: ResNet18/34 and MobileNetV2 with seed 002's attention hook,
and the compact mini-Xception of the ``fer`` package.

Architecture fidelity against timm lives in ``test_timm_fidelity_cnn.py``; here: the shared
model harness, parameter counts computed by hand from the papers' layer lists, where the
attention modules sit, the fer-file converter against an independent Keras rebuild of the
original code, and argument errors.
"""

import numpy as np
import pytest

import keras

from keras_fer.models import cnn_common, create_model, get_architecture
from keras_fer.models.mini_xception import load_fer_weights
from keras_fer.testing import run_model_test


def _pixels(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype("float32")


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# --- harness ----------------------------------------------------------------------------------

# Every architecture goes through the whole harness at its registry test size
# (test_models_registry.py); the slow suite adds the hook's other options.
@pytest.mark.slow
@pytest.mark.parametrize("arch, shape, options", [
    ("resnet18", (2, 48, 48, 1), {"small_input": True, "attention": "bam", "dropout": 0.2}),
    ("mobilenetv2", (2, 64, 64, 3),
     {"attention": "hfc", "attention_cutoff": 0.0, "width_multiplier": 0.5}),
    # Batch 2: with one sample, module 4's shortcut BN feeds the global average directly and
    # its gamma gets an exactly zero gradient (normalised values average to 0 per sample).
    ("mini_xception", (2, 40, 40, 1), {"width": 2.0, "head": "dense", "dropout": 0.3}),
])
def test_harness_with_options(arch, shape, options):
    model = create_model(arch, num_classes=7, input_shape=shape[1:], **options)
    assert model.output_shape == (None, 7)
    assert model.arch == arch
    for key, value in options.items():
        assert model.arch_options[key] == value
    run_model_test(model, _pixels(shape))


def test_resnet34_builds_and_runs_with_a_free_batch_dimension():
    model = create_model("resnet34", input_shape=(32, 32, 3))
    assert model.input_shape == (None, 32, 32, 3)
    out = model(_pixels((3, 32, 32, 3)))
    assert out.shape == (3, 7) and np.all(np.isfinite(out.numpy()))
    # timm resnet34 has 21,797,672 parameters with a 1000-way head: 21,284,672 in the
    # backbone, + 2 BN running statistics per BN channel in Keras' count.
    bn_channels = sum(int(w.shape[0]) for w in model.backbone.weights
                      if w.path.endswith("moving_mean"))
    assert model.backbone.count_params() == 21_284_672 + 2 * bn_channels


def test_registry_entries():
    for arch, timm_name in (("resnet18", "resnet18"), ("resnet34", "resnet34"),
                            ("mobilenetv2", "mobilenetv2_100"), ("mini_xception", None)):
        spec = get_architecture(arch)
        assert spec.timm_name == timm_name
    spec = get_architecture("mini_xception")
    assert spec.default_input_shape == (48, 48, 1) and spec.mean == (0.5,) * 3
    model = create_model("mini_xception")
    assert model.preprocessing["mean"] == [0.5] and model.preprocessing["std"] == [0.5]


# --- attention hook: parameter deltas and placement ------------------------------------------

_PLAIN = {}


def _delta(arch, input_shape, count=lambda m: m.count_params(), **options):
    """Parameters added by ``options`` to ``arch`` (the plain model is built once)."""
    if (arch, input_shape) not in _PLAIN:
        _PLAIN[arch, input_shape] = create_model(arch, input_shape=input_shape)
    hooked = create_model(arch, input_shape=input_shape, **options)
    return count(hooked) - count(_PLAIN[arch, input_shape])


RESNET_POINTS = (64, 64, 128, 256)
MOBILENET_POINTS = (32, 16, 24, 32, 64, 96, 160)


def test_hfc_adds_708_parameters_to_resnet18_and_767_to_mobilenetv2():
    # SPEC / paper Table 2: 1x1 convs (C weights) + 7x7 one-channel convs (49), no biases.
    assert sum(RESNET_POINTS) + 49 * 4 == 708 and sum(MOBILENET_POINTS) + 49 * 7 == 767
    assert _delta("resnet18", (64, 64, 3), attention="hfc") == 708
    # 128x128 so that the last module's map (4x4) admits the default cutoff of 1 bin.
    assert _delta("mobilenetv2", (128, 128, 3), attention="hfc") == 767
    # At a quarter of the width the hook points see 16, 16, 32 and 64 channels.
    narrow = {"input_shape": (64, 64, 3), "width_multiplier": 0.25}
    assert create_model("resnet18", attention="hfc", **narrow).count_params() - \
        create_model("resnet18", **narrow).count_params() == 16 + 16 + 32 + 64 + 49 * 4


@pytest.mark.parametrize("query, per_module", [("lfc", 49), ("hfc+lfc", 98),
                                               ("hfc+lfc+hl", 147)])
def test_ablation_variants_widen_only_the_score_conv(query, per_module):
    assert _delta("resnet18", (64, 64, 3), attention=query) == 512 + 4 * per_module


def test_bam_parameter_deltas():
    """Paper Table 2: BAM +23,808 (ResNet18) / +11,192 (MobileNetV2) at the same 4 / 7 hook
    points, reproduced by BAM without BN affine parameters and without conv biases:
    per module 3 C c + 18 c^2 + C + 2 c with c = C // 16 (torch counts parameters only,
    hence trainable weights here)."""

    def paper_count(channels):
        return sum(3 * c * max(1, c // 16) + 18 * max(1, c // 16) ** 2 + c + 2 * max(1, c // 16)
                   for c in channels)

    options = cnn_common.PAPER_BAM_OPTIONS
    for arch, channels, expected in (("resnet18", RESNET_POINTS, 23_808),
                                     ("mobilenetv2", MOBILENET_POINTS, 11_192)):
        assert paper_count(channels) == expected
        shape = (128, 128, 3) if arch == "mobilenetv2" else (64, 64, 3)
        assert _delta(arch, shape, _trainable, attention="bam",
                      attention_options=options) == expected, arch
    # The BAM layer's defaults (BN closing both branches, biased convs) cost more.
    assert _delta("resnet18", (64, 64, 3), _trainable, attention="bam") > 23_808


def _check_hook_points(backbone, expected):
    """Each module takes the output of the named layer and feeds the rest of the network."""
    names = cnn_common.attention_layer_names(backbone)
    assert names == [cnn_common.ATTENTION_PREFIX + point for point, _, _ in expected]
    order = [layer.name for layer in backbone.layers]
    for name, (point, source, channels) in zip(names, expected):
        layer = backbone.get_layer(name)
        assert layer.input is backbone.get_layer(source).output, (name, source)
        assert layer.input.shape[-1] == channels
        assert order.index(name) > order.index(source)
        consumers = [l.name for l in backbone.layers
                     if l is not layer and any(t is layer.output for t in
                                               keras.tree.flatten(_inputs_of(l)))]
        assert consumers, f"nothing consumes {name}"
    return names


def _inputs_of(layer):
    try:
        return layer.input
    except (AttributeError, ValueError):
        return []


def test_resnet_attention_sits_after_the_stem_and_stages_1_to_3():
    model = create_model("resnet18", input_shape=(64, 64, 3), attention="hfc")
    _check_hook_points(model.backbone, [("stem", "maxpool", 64), ("layer1", "layer1.1.act2", 64),
                                        ("layer2", "layer2.1.act2", 128),
                                        ("layer3", "layer3.1.act2", 256)])
    # Nothing after the last stage: its output is the backbone's.
    assert model.backbone.output is model.backbone.get_layer("layer4.1.act2").output
    small = create_model("resnet18", input_shape=(48, 48, 1), small_input=True, attention="hfc")
    assert small.backbone.get_layer("attention_after_stem").input is \
        small.backbone.get_layer("act1").output
    assert "maxpool" not in [layer.name for layer in small.backbone.layers]
    assert small.backbone.output_shape == (None, 6, 6, 512)


def test_resnet_without_stem_pool_keeps_every_weight_and_twice_the_resolution():
    pooled = create_model("resnet18", input_shape=(48, 48, 1), width_multiplier=0.25)
    unpooled = create_model("resnet18", input_shape=(48, 48, 1), width_multiplier=0.25,
                            stem_pool=False, attention="hfc", attention_cutoff=0.25,
                            attention_options={"relative_cutoff": True})
    assert "maxpool" not in [layer.name for layer in unpooled.backbone.layers]
    assert pooled.backbone.output_shape == (None, 2, 2, 128)
    assert unpooled.backbone.output_shape == (None, 3, 3, 128)
    assert unpooled.arch_options["stem_pool"] is False
    shapes = {w.path: w.shape for w in pooled.weights}
    assert all(shapes[w.path] == w.shape for w in unpooled.weights if w.path in shapes)
    with pytest.raises(ValueError, match="small_input=True has none to drop"):
        create_model("resnet18", input_shape=(48, 48, 1), small_input=True, stem_pool=False)


def test_mobilenetv2_attention_sits_after_the_stem_and_the_first_six_stages():
    model = create_model("mobilenetv2", input_shape=(64, 64, 3), attention="hfc",
                         attention_cutoff=0.0)
    _check_hook_points(model.backbone, [
        ("stem", "bn1.act", 32), ("blocks.0", "blocks.0.0.bn2", 16),
        ("blocks.1", "blocks.1.1.add", 24), ("blocks.2", "blocks.2.2.add", 32),
        ("blocks.3", "blocks.3.3.add", 64), ("blocks.4", "blocks.4.2.add", 96),
        ("blocks.5", "blocks.5.2.add", 160)])
    assert model.backbone.output_shape == (None, 2, 2, 1280)


def test_attention_options_reach_the_modules():
    model = create_model("resnet18", input_shape=(64, 64, 3), attention="hfc+lfc",
                         attention_cutoff=0.25,
                         attention_options={"relative_cutoff": True, "filter_shape": "square"})
    for name in cnn_common.attention_layer_names(model.backbone):
        config = model.backbone.get_layer(name).get_config()
        assert (config["query"], config["cutoff"], config["relative_cutoff"],
                config["filter_shape"]) == ("hfc+lfc", 0.25, True, "square")


# --- mini-Xception ---------------------------------------------------------------------------

def _mini_xception_count(num_classes, in_channels=1, base=8, modules=(16, 32, 64, 128)):
    """Parameters of the published layer list, by hand (BN: 4 per channel, as Keras counts)."""
    total = 9 * in_channels * base + 4 * base + 9 * base * base + 4 * base
    cin = base
    for c in modules:
        total += cin * c + 4 * c  # shortcut 1x1 conv + BN
        total += 9 * cin + cin * c + 4 * c  # separable conv + BN
        total += 9 * c + c * c + 4 * c  # separable conv + BN
        cin = c
    return total + 9 * cin * num_classes + num_classes  # head conv with bias


def test_mini_xception_parameter_count_is_the_papers():
    assert _mini_xception_count(7) == 58_423  # the fer package's emotion model
    model = create_model("mini_xception")
    assert model.backbone.count_params() == 58_423
    # + the classifier's Dense over the 7 pooled class scores, initialised to the identity.
    assert model.count_params() == 58_423 + 7 * 7 + 7
    dense_w, dense_b = model.get_layer("predictions").get_weights()
    np.testing.assert_array_equal(dense_w, np.eye(7))
    np.testing.assert_array_equal(dense_b, np.zeros(7))
    wide = create_model("mini_xception", width=2.0)
    assert wide.backbone.count_params() == _mini_xception_count(
        7, base=16, modules=(32, 64, 128, 256))
    dense_head = create_model("mini_xception", head="dense", num_classes=8)
    assert dense_head.backbone.output_shape == (None, 3, 3, 128)
    assert dense_head.count_params() == _mini_xception_count(8) - (9 * 128 * 8 + 8) + 129 * 8


def test_mini_xception_l2_penalises_the_two_base_convs_only():
    model = create_model("mini_xception")
    regularised = [layer.name for layer in model.backbone.layers
                   if getattr(layer, "kernel_regularizer", None) is not None]
    assert regularised == ["base.conv1", "base.conv2"]
    w1 = model.backbone.get_layer("base.conv1").kernel.numpy()
    w2 = model.backbone.get_layer("base.conv2").kernel.numpy()
    np.testing.assert_allclose(sum(float(l) for l in model.losses),
                               0.01 * (np.sum(w1 ** 2) + np.sum(w2 ** 2)), rtol=1e-5)
    assert not create_model("mini_xception", l2_regularization=0.0).losses


def _original_mini_xception(input_shape, num_classes):
    """The original ``mini_XCEPTION`` (oarriaga/face_classification), rewritten from its
    layer list with Keras' automatic layer names; ends before the softmax."""
    layers = keras.layers
    img = keras.Input(input_shape)
    x = layers.Conv2D(8, (3, 3), use_bias=False)(img)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(8, (3, 3), use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    for filters in (16, 32, 64, 128):
        residual = layers.Conv2D(filters, (1, 1), strides=(2, 2), padding="same",
                                 use_bias=False)(x)
        residual = layers.BatchNormalization()(residual)
        x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)
        x = layers.add([x, residual])
    x = layers.Conv2D(num_classes, (3, 3), padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(img, x)


def _randomise(model, seed=0):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.path.endswith("moving_variance"):
            w.assign(rng.uniform(0.5, 2.0, w.shape).astype("float32"))
        else:
            w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))


def test_fer_file_converter_matches_the_original_network(tmp_path):
    reference = _original_mini_xception((48, 48, 1), 7)
    _randomise(reference)
    path = str(tmp_path / "mini_xception.h5")
    reference.save(path)
    ours = create_model("mini_xception", weights=path)
    x = _pixels((3, 48, 48, 1))
    expected = reference((x / 255.0 - 0.5) / 0.5).numpy()
    np.testing.assert_allclose(ours(x).numpy(), expected, atol=1e-5, rtol=1e-5)
    # The input size is free (the net is fully convolutional): fer itself runs at 64x64.
    ours64 = create_model("mini_xception", input_shape=(64, 64, 1), weights=path)
    x64 = _pixels((2, 64, 64, 1), seed=1)
    reference64 = _original_mini_xception((64, 64, 1), 7)
    reference64.set_weights(reference.get_weights())
    np.testing.assert_allclose(ours64(x64).numpy(),
                               reference64((x64 / 255.0 - 0.5) / 0.5).numpy(),
                               atol=1e-5, rtol=1e-5)


def test_fer_file_errors(tmp_path):
    reference = _original_mini_xception((48, 48, 1), 7)
    path = str(tmp_path / "seven.h5")
    reference.save(path)
    eight = create_model("mini_xception", num_classes=8)
    before = [w.numpy() for w in eight.weights]
    with pytest.raises(ValueError, match="head_conv"):
        load_fer_weights(eight, path)
    for b, w in zip(before, eight.weights):  # all or nothing
        np.testing.assert_array_equal(b, w.numpy())
    with pytest.raises(ValueError, match="head='paper'"):
        load_fer_weights(create_model("mini_xception", head="dense"), path)
    with pytest.raises(ValueError, match="does not exist"):
        load_fer_weights(eight, str(tmp_path / "nope.h5"))
    other = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)])
    other.save(str(tmp_path / "other.h5"))
    with pytest.raises(ValueError, match="mini-Xception"):
        load_fer_weights(eight, str(tmp_path / "other.h5"))


# --- argument errors -------------------------------------------------------------------------

@pytest.mark.parametrize("arch, options, word", [
    ("resnet18", {"attention": "cbam"}, "attention must be one of"),
    ("resnet18", {"attention": "bam", "attention_cutoff": 2}, "attention_cutoff"),
    ("resnet18", {"attention_options": {"cutoff": 1}}, "attention_options"),
    ("resnet18", {"attention": "hfc", "attention_options": [1]}, "attention_options"),
    ("resnet34", {"attention": "hfc", "attention_cutoff": -1}, "cutoff must be >= 0"),
    ("mobilenetv2", {"width_multiplier": 0}, "width_multiplier"),
    ("resnet18", {"width_multiplier": -0.5}, "width_multiplier"),
    ("mobilenetv2", {"attention": "hfc", "attention_cutoff": 1.0}, "cutoff"),
    ("mini_xception", {"width": -1}, "width"),
    ("mini_xception", {"head": "mlp"}, "head"),
    ("mini_xception", {"l2_regularization": -0.1}, "l2_regularization"),
])
def test_bad_arguments(arch, options, word):
    with pytest.raises(ValueError, match=word):
        create_model(arch, input_shape=(64, 64, 3) if arch != "mini_xception" else None,
                     **options)


def test_unknown_option_and_tiny_input():
    with pytest.raises(TypeError, match="width"):
        create_model("resnet18", width=2)
    with pytest.raises(ValueError, match="at least 5x5"):
        create_model("mini_xception", input_shape=(4, 4, 1))
    # Non-square maps: the frequency attention refuses them by default, with its own message.
    with pytest.raises(ValueError, match="square"):
        create_model("resnet18", input_shape=(64, 96, 3), attention="hfc")
    assert create_model("resnet18", input_shape=(64, 96, 3), attention="hfc",
                        attention_options={"non_square": "pad"}).output_shape == (None, 7)


def test_default_hfc_cutoff_adapts_on_maps_too_small_for_one_bin():
    # The README's call: the last hooked stage of a ResNet18 on 48x48 sees a 3x3 map, where a
    # 1-bin cutoff leaves no high frequency. Larger maps keep the paper's 1-bin default.
    model = create_model("resnet18", input_shape=(48, 48, 1), attention="hfc",
                         width_multiplier=0.25)
    modules = {layer.name: layer for layer in model.backbone.layers
               if layer.name.startswith("attention_")}
    assert (modules["attention_after_layer3"].cutoff,
            modules["attention_after_layer3"].relative_cutoff) == (0.25, True)
    assert (modules["attention_after_stem"].cutoff,
            modules["attention_after_stem"].relative_cutoff) == (1.0, False)
    # An explicit cutoff is still the user's choice, and still checked.
    with pytest.raises(ValueError, match="leaves no high frequency for a 3x3 input"):
        create_model("resnet18", input_shape=(48, 48, 1), attention="hfc",
                     attention_cutoff=1.0, width_multiplier=0.25)
