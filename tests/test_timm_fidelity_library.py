"""Architecture fidelity of the library CNNs against timm (random weights, no download).

Each test builds the timm model with random weights (BatchNorm statistics, scales and biases
re-randomised so a wrong mapping cannot pass by accident), writes its checkpoint the way a
user would (``save_for_hf`` folder or a plain safetensors file), builds ours with
``weights=<that checkpoint>`` and compares outputs: timm sees ``(x / 255 - mean) / std``, ours
sees ``x`` (it normalises inside). Tolerances are relative to the output scale, since random
deep networks produce large activations.
"""

import numpy as np
import pytest

from reference.timm_reference import import_timm, timm_forward

from keras_fer.models import create_model, get_architecture

timm = import_timm()
torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")


def _randomise(model, seed=0):
    """Random BN statistics/affine parameters and conv/linear biases (timm initialises them
    to 0/1, which would hide a swapped mean/variance or a dropped bias)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2, generator=gen)
                module.running_var.uniform_(0.5, 1.5, generator=gen)
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.normal_(0.0, 0.2, generator=gen)
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module.bias is not None:
                module.bias.normal_(0.0, 0.1, generator=gen)
    return model.eval()


def _timm_model(name, **kwargs):
    return _randomise(timm.create_model(name, pretrained=False, **kwargs))


def _save_file(model, tmp_path):
    path = str(tmp_path / "model.safetensors")
    safetensors_torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


def _save_for_hf(model, tmp_path):
    folder = tmp_path / "timm_folder"
    timm.models.save_for_hf(model, str(folder), safe_serialization=True)
    return str(folder)


def _images(size, channels=3, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, channels)).astype(
        "float32")


def _normalised(x, arch):
    spec = get_architecture(arch)
    return ((x / 255.0 - np.array(spec.mean)) / np.array(spec.std)).astype("float32")


def _assert_close(actual, expected, rel=1e-4, what="output"):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=rel, atol=rel * scale, err_msg=what)


def _logits_match(arch, timm_name, size, tmp_path, save=_save_file, **timm_kwargs):
    tm = _timm_model(timm_name, num_classes=7, **timm_kwargs)
    model = create_model(arch, num_classes=7, input_shape=(size, size, 3),
                         weights=save(tm, tmp_path))
    x = _images(size)
    expected = timm_forward(tm, _normalised(x, arch))
    _assert_close(model.predict(x, verbose=0), expected, what=f"{arch} logits vs timm")
    return model, tm


def test_vgg16_features_and_pooled_logits_match_timm(tmp_path):
    # VGG: ours replaces timm's ConvMlp pre-logits with global pooling, so the backbone is
    # compared with timm's forward_features, and the logits with the pooled timm features
    # through our own dense head.
    tm = _timm_model("vgg16", num_classes=7)
    model = create_model("vgg16", input_shape=(64, 64, 3), weights=_save_for_hf(tm, tmp_path))
    x = _images(64)
    xn = _normalised(x, "vgg16")
    with torch.no_grad():
        feats = tm.forward_features(torch.from_numpy(xn.transpose(0, 3, 1, 2))).numpy()
    feats = feats.transpose(0, 2, 3, 1)
    _assert_close(model.backbone.predict(xn, verbose=0), feats, what="vgg16 features")
    kernel, bias = model.get_layer("predictions").get_weights()
    _assert_close(model.predict(x, verbose=0), feats.mean(axis=(1, 2)) @ kernel + bias,
                  what="vgg16 pooled logits")

    # Grey model from the RGB checkpoint through keras-hub's converter (stem summed over
    # RGB): its features on a normalised grey image equal timm's on that image replicated.
    grey = create_model("vgg16", input_shape=(64, 64, 1), weights=_save_file(tm, tmp_path))
    g = xn[..., :1]
    with torch.no_grad():
        feats = tm.forward_features(torch.from_numpy(np.repeat(g, 3, -1).transpose(0, 3, 1, 2)))
    _assert_close(grey.backbone.predict(g, verbose=0), feats.numpy().transpose(0, 2, 3, 1),
                  what="grey vgg16 features")


def test_resnet50d_logits_match_timm(tmp_path):
    _logits_match("resnet50d", "resnet50d", 64, tmp_path, save=_save_for_hf)


@pytest.mark.slow
def test_resnet50d_odd_input_matches_timm(tmp_path):
    # Odd sizes exercise the average-pool shortcut's ceil mode and the explicit stem padding.
    _logits_match("resnet50d", "resnet50d", 57, tmp_path)


def test_efficientnet_b0_logits_match_timm(tmp_path):
    _logits_match("efficientnet_b0", "efficientnet_b0", 64, tmp_path)


def test_xception_logits_match_timm(tmp_path):
    # 71x71: every max-pool input is odd, where TF "same" and torch padding agree (see
    # keras_fer.models.library_cnns.backbone).
    _logits_match("xception", "legacy_xception", 71, tmp_path)


@pytest.mark.slow
def test_xception_grey_input_takes_rgb_weights(tmp_path):
    # Grey model from an RGB checkpoint (stem summed over RGB) == the RGB timm model fed the
    # grey image replicated to three channels (xception's mean/std are equal per channel).
    tm = _timm_model("legacy_xception", num_classes=7)
    model = create_model("xception", input_shape=(71, 71, 1), weights=_save_file(tm, tmp_path))
    x = _images(71, channels=1)
    expected = timm_forward(tm, _normalised(np.repeat(x, 3, axis=-1), "xception"))
    _assert_close(model.predict(x, verbose=0), expected, what="grey xception vs timm")


def _inception_pool_excluding_padding(monkeypatch):
    """timm's InceptionV3 average-pools with PyTorch's default count_include_pad=True; Keras
    (TF "same" pooling) divides border windows by the real pixel count. Aligning timm to the
    Keras convention isolates the weight mapping from the pooling convention."""
    import sys

    # ``timm.models.inception_v3`` is shadowed by the model function of the same name.
    timm_inception = sys.modules["timm.models.inception_v3"]
    original = timm_inception.F.avg_pool2d

    def avg_pool2d(x, kernel_size, stride=None, padding=0, **kwargs):
        kwargs["count_include_pad"] = False
        return original(x, kernel_size, stride, padding, **kwargs)

    monkeypatch.setattr(timm_inception.F, "avg_pool2d", avg_pool2d)


@pytest.mark.slow
def test_inception_v3_logits_match_timm(tmp_path, monkeypatch):
    tm = _timm_model("inception_v3", num_classes=7)
    path = _save_file(tm, tmp_path)
    x = _images(75)
    xn = _normalised(x, "inception_v3")
    timm_logits = timm_forward(tm, xn)

    # A timm checkpoint selects timm's pooling convention: equal to timm as it is.
    model = create_model("inception_v3", input_shape=(75, 75, 3), weights=path)
    assert model.arch_options["count_include_pad"] is True
    _assert_close(model.predict(x, verbose=0), timm_logits, what="inception_v3 vs timm")

    # Keras' own pooling: equal to timm with the convention aligned, and the documented gap
    # to timm as it is must be real (the patch did something) and well below the scale.
    keras_pooling = create_model("inception_v3", input_shape=(75, 75, 3), weights=path,
                                 count_include_pad=False)
    ours = keras_pooling.predict(x, verbose=0)
    _inception_pool_excluding_padding(monkeypatch)
    _assert_close(ours, timm_forward(tm, xn), what="inception_v3 (Keras pooling) vs timm")
    gap = float(np.abs(ours - timm_logits).max() / np.abs(timm_logits).max())
    assert 1e-3 < gap < 0.5, gap


def test_head_is_left_fresh_for_an_imagenet_checkpoint(tmp_path):
    tm = _timm_model("efficientnet_b0", num_classes=1000)
    path = _save_file(tm, tmp_path)
    model = create_model("efficientnet_b0", input_shape=(32, 32, 3), weights=path)
    assert model.get_layer("predictions").kernel.shape == (1280, 7)
    with pytest.raises(ValueError, match="classifier.weight"):
        create_model("efficientnet_b0", input_shape=(32, 32, 3), weights=path, load_head=True)


def test_wrong_checkpoint_names_file_and_tensor_and_restores_weights(tmp_path):
    path = _save_file(_timm_model("resnet50d", num_classes=7), tmp_path)
    with pytest.raises(ValueError, match=r"model\.safetensors.*'conv_stem\.weight' is missing"):
        create_model("efficientnet_b0", input_shape=(32, 32, 3), weights=path)
    model = create_model("efficientnet_b0", input_shape=(32, 32, 3))
    before = [w.copy() for w in model.get_weights()]
    from keras_fer.models.library_cnns import FAMILIES, load_weights

    with pytest.raises(ValueError, match="conv_stem.weight"):
        load_weights(model, path, FAMILIES["efficientnet_b0"])
    for b, a in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_extra_tensors_are_an_error():
    # A checkpoint with tensors no layer takes (e.g. a deeper model's) must not load
    # "successfully"; a mapping of arrays is accepted as well as files.
    tm = _timm_model("resnet50d", num_classes=7)
    tensors = {k: v.numpy() for k, v in tm.state_dict().items()}
    tensors["layer5.0.conv1.weight"] = np.zeros((8, 8, 1, 1), "float32")
    with pytest.raises(ValueError,
                       match="'layer5.0.conv1.weight' matches no layer of 'resnet50d_backbone'"):
        create_model("resnet50d", input_shape=(32, 32, 3), weights=tensors)
