"""Architecture fidelity of the transformer families against timm (random weights).

For each family a timm model is built with small settings and noisy weights (every parameter
perturbed, so LayerNorm scales are not 1 and biases not 0), its state dict is converted into
ours by the package's conversion code, and the logits must agree to 1e-4 on the same images
(timm is fed ``(x / 255 - mean) / std``, ours the raw pixels it normalises itself). The
``weights=`` path is checked with real safetensors files. Full-size models are ``slow``.
"""

import numpy as np
import pytest

from keras_fer.models import create_model, get_architecture
from reference.timm_reference import import_timm, timm_forward

ATOL = 1e-4


def _noisy(model, seed=0, scale=0.2):
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    return model.eval()


def _state(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _pixels(size, channels=3, n=2, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, channels)).astype(
        "float32")


def _normalised(x, arch):
    spec = get_architecture(arch)
    channels = x.shape[-1]
    mean = np.array(spec.mean if channels == 3 else [np.mean(spec.mean)])
    std = np.array(spec.std if channels == 3 else [np.mean(spec.std)])
    return ((x / 255.0 - mean) / std).astype("float32")


def _assert_same_logits(arch, torch_model, keras_model, x):
    expected = timm_forward(torch_model, _normalised(x, arch))
    np.testing.assert_allclose(keras_model(x).numpy(), expected, atol=ATOL, rtol=ATOL,
                               err_msg=arch)


def _timm_and_ours(arch, timm_name, size, timm_kwargs, our_kwargs, num_classes=5):
    timm = import_timm()
    torch_model = _noisy(timm.create_model(timm_name, pretrained=False, num_classes=num_classes,
                                           img_size=size, **timm_kwargs))
    ours = create_model(arch, num_classes=num_classes, input_shape=(size, size, 3),
                        weights=_state(torch_model), **our_kwargs)
    return torch_model, ours


SMALL = {
    # arch: (timm name, image size, timm kwargs, our kwargs)
    "vit_tiny_patch16": ("vit_tiny_patch16_224", 32,
                         dict(patch_size=8, embed_dim=32, depth=2, num_heads=2),
                         dict(patch_size=8, embed_dim=32, depth=2, num_heads=2)),
    "deit_small_patch16": ("deit_small_patch16_224", 32,
                           dict(patch_size=16, embed_dim=24, depth=1, num_heads=3),
                           dict(embed_dim=24, depth=1, num_heads=3)),
    # 48 px: a 12x12 map padded to 14 with shifted windows of 7, then windows clamped to the
    # 6x6, 3x3 and 2x2 maps of the later stages.
    "swin_tiny_patch4_window7": ("swin_tiny_patch4_window7_224", 48,
                                 dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)),
                                 dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))),
    # timm's convit embed_dim is per head: 8 x 4 heads = our 32.
    "convit_tiny": ("convit_tiny", 32,
                    dict(patch_size=8, embed_dim=8, num_heads=4, depth=3, local_up_to_layer=2),
                    dict(patch_size=8, embed_dim=32, num_heads=4, depth=3, local_up_to_layer=2)),
    # 120 px: branch 1 sees the image resized to 112 (PyTorch bicubic) in 16 px patches.
    "crossvit_tiny": ("crossvit_tiny_240", 120,
                      dict(embed_dim=[16, 32], depth=[[1, 2, 0], [1, 1, 0]], num_heads=[2, 2],
                           mlp_ratio=[2, 3, 1]),
                      dict(embed_dim=(16, 32), depth=((1, 2, 0), (1, 1, 0)), num_heads=(2, 2),
                           mlp_ratio=(2, 3))),
}


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_small_models_equal_timm(arch):
    timm_name, size, timm_kwargs, our_kwargs = SMALL[arch]
    torch_model, ours = _timm_and_ours(arch, timm_name, size, timm_kwargs, our_kwargs)
    _assert_same_logits(arch, torch_model, ours, _pixels(size))


def test_hybrid_vit_equals_timm():
    """timm's own hybrid parts (``_resnetv2`` stem, ``HybridEmbed``, ``VisionTransformer``)
    with a two-stage stem, small enough to build in a second."""
    import_timm()
    from functools import partial

    from timm.layers import HybridEmbed
    from timm.models.vision_transformer import VisionTransformer
    from timm.models.vision_transformer_hybrid import _resnetv2

    torch_model = _noisy(VisionTransformer(
        img_size=32, patch_size=1, num_classes=5, embed_dim=32, depth=2, num_heads=2,
        embed_layer=partial(HybridEmbed, backbone=_resnetv2((1, 1)))))
    ours = create_model("vit_small_r26_s32", num_classes=5, input_shape=(32, 32, 3),
                        layers=(1, 1), embed_dim=32, depth=2, num_heads=2,
                        weights=_state(torch_model))
    _assert_same_logits("vit_small_r26_s32", torch_model, ours, _pixels(32))


def test_weights_from_safetensors_file_and_save_for_hf_folder(tmp_path):
    timm = import_timm()
    from safetensors.torch import save_file

    timm_name, size, timm_kwargs, our_kwargs = SMALL["swin_tiny_patch4_window7"]
    torch_model = _noisy(timm.create_model(timm_name, pretrained=False, num_classes=7,
                                           img_size=size, **timm_kwargs))
    plain = tmp_path / "swin.safetensors"
    save_file({k: v.contiguous() for k, v in torch_model.state_dict().items()}, str(plain))
    folder = tmp_path / "hf"
    timm.models.save_for_hf(torch_model, str(folder), safe_serialization=True)
    x = _pixels(size)
    for source in (plain, folder):
        ours = create_model("swin_tiny_patch4_window7", input_shape=(size, size, 3),
                            weights=str(source), **our_kwargs)
        _assert_same_logits("swin_tiny_patch4_window7", torch_model, ours, x)
        assert "weights" not in ours.arch_options


def test_rgb_checkpoint_into_grey_model_sums_the_patch_kernel():
    """A 1-channel model takes an RGB checkpoint as timm's ``in_chans=1`` does
    (``adapt_input_conv``: the kernel summed over colour)."""
    timm = import_timm()
    from timm.models._manipulate import adapt_input_conv

    kwargs = dict(patch_size=8, embed_dim=32, depth=1, num_heads=2)
    rgb = _noisy(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7,
                                   img_size=32, **kwargs))
    grey = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7,
                             img_size=32, in_chans=1, **kwargs).eval()
    state = rgb.state_dict()
    state["patch_embed.proj.weight"] = adapt_input_conv(1, state["patch_embed.proj.weight"])
    grey.load_state_dict(state)
    ours = create_model("vit_tiny_patch16", input_shape=(32, 32, 1), weights=_state(rgb),
                        **kwargs)
    _assert_same_logits("vit_tiny_patch16", grey, ours, _pixels(32, channels=1))


def test_checkpoint_for_another_size_resamples_position_embedding():
    """Weights of a 32 px ViT into a 48 px one, against timm's own resampling
    (``checkpoint_filter_fn``: bicubic, antialiased)."""
    timm = import_timm()
    from timm.models.vision_transformer import checkpoint_filter_fn

    kwargs = dict(patch_size=8, embed_dim=32, depth=1, num_heads=2)
    small = _noisy(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7,
                                     img_size=32, **kwargs))
    large = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7,
                              img_size=48, **kwargs).eval()
    large.load_state_dict(checkpoint_filter_fn(small.state_dict(), large))
    ours = create_model("vit_tiny_patch16", input_shape=(48, 48, 3), weights=_state(small),
                        **kwargs)
    _assert_same_logits("vit_tiny_patch16", large, ours, _pixels(48))


def test_head_is_kept_fresh_for_another_number_of_classes():
    timm_name, size, timm_kwargs, our_kwargs = SMALL["convit_tiny"]
    timm = import_timm()
    torch_model = _noisy(timm.create_model(timm_name, pretrained=False, num_classes=1000,
                                           img_size=size, **timm_kwargs))
    ours = create_model("convit_tiny", num_classes=7, input_shape=(size, size, 3),
                        weights=_state(torch_model), **our_kwargs)
    x = _pixels(size)
    features = ours.backbone(ours.get_layer("normalize")(x)).numpy()[:, 0]
    torch_model.reset_classifier(0)
    np.testing.assert_allclose(features, timm_forward(torch_model, _normalised(x, "convit_tiny")),
                               atol=ATOL, rtol=ATOL)
    assert ours.output_shape == (None, 7)


def test_bad_checkpoints_fail_clearly_and_change_nothing(tmp_path):
    timm = import_timm()
    from safetensors.numpy import save_file

    timm_name, size, timm_kwargs, our_kwargs = SMALL["crossvit_tiny"]
    torch_model = _noisy(timm.create_model(timm_name, pretrained=False, num_classes=5,
                                           img_size=size, **timm_kwargs))
    state = _state(torch_model)
    ours = create_model("crossvit_tiny", num_classes=5, input_shape=(size, size, 3),
                        **our_kwargs)
    from keras_fer.models.crossvit import load_timm_weights

    before = [w.copy() for w in ours.get_weights()]
    missing = dict(state)
    del missing["blocks.0.fusion.1.attn.wk.weight"]
    path = tmp_path / "missing.safetensors"
    save_file(missing, str(path))
    with pytest.raises(ValueError, match=r"missing\.safetensors.*blocks\.0\.fusion\.1\.attn"
                                         r"\.wk\.weight.*missing"):
        load_timm_weights(ours, str(path))
    extra = dict(state, **{"blocks.9.norm.weight": np.ones(4, "float32")})
    with pytest.raises(ValueError, match=r"'blocks\.9\.norm\.weight' matches no layer"):
        load_timm_weights(ours, extra)
    wrong = dict(state, **{"norm.1.weight": np.ones(7, "float32")})
    with pytest.raises(ValueError, match=r"'norm\.1\.weight' converts to shape \(7,\)"):
        load_timm_weights(ours, wrong)
    for old, new in zip(before, ours.get_weights()):
        np.testing.assert_array_equal(old, new)
    with pytest.raises(ValueError, match="does not exist"):
        load_timm_weights(ours, str(tmp_path / "nope.safetensors"))
    assert load_timm_weights(ours, state) is True
    _assert_same_logits("crossvit_tiny", torch_model, ours, _pixels(size))


FULL = {
    "vit_base_patch16": ("vit_base_patch16_224", 224),
    "deit_tiny_patch16": ("deit_tiny_patch16_224", 224),
    "swin_tiny_patch4_window7": ("swin_tiny_patch4_window7_224", 224),
    "convit_base": ("convit_base", 224),
    "crossvit_base": ("crossvit_base_240", 240),
    "vit_base_r50_s16": ("vit_base_r50_s16_224", 224),
    "vit_small_r26_s32": ("vit_small_r26_s32_224", 224),
}


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(FULL))
def test_full_size_models_equal_timm(arch):
    timm = import_timm()
    timm_name, size = FULL[arch]
    torch_model = _noisy(timm.create_model(timm_name, pretrained=False, num_classes=1000),
                         scale=0.02)
    ours = create_model(arch, num_classes=1000, input_shape=(size, size, 3),
                        weights=_state(torch_model))
    expected = sum(p.numel() for p in torch_model.parameters())
    if arch.startswith("crossvit"):
        expected -= 1000  # timm's two heads' biases become one (their mean)
    assert ours.count_params() == expected
    _assert_same_logits(arch, torch_model, ours, _pixels(size, n=1))
