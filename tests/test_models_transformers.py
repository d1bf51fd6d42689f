"""Transformer blocks and families (ViT/DeiT, Swin, ConViT, CrossViT, hybrid ViT).

Each block is checked against a NumPy implementation written here from the papers' equations
(float64, independent of the Keras code), by central-difference gradients, and by the shared
harness; each family goes through ``run_model_test`` at the tiny size its registry entry
carries (48x48 grey faces), in ``test_models_registry.py``. Equality with timm's models is in
``test_timm_fidelity_transformers.py``.
"""

import math

import numpy as np
import pytest
from scipy.special import erf

from keras_fer.models import create_model, get_architecture, list_architectures
from keras_fer.models.convit import GatedPositionalSelfAttention
from keras_fer.models.crossvit import CrossAttention, MultiScaleBlock
from keras_fer.models.hybrid_vit import StdConv2D
from keras_fer.models.swin import PatchMerging, SwinBlock, WindowAttention
from keras_fer.models.transformer_blocks import (
    DropPath,
    MultiHeadSelfAttention,
    PatchEmbedding,
    PositionEmbedding,
    PrependClassToken,
    ResizeImage,
    TransformerBlock,
    bicubic_resize_matrix,
)
from keras_fer.testing import check_gradients, run_layer_test

RNG = np.random.default_rng(0)
# Block-level harness runs check shapes, config and ``.keras`` round trips; SavedModel export
# and the training step, costly, run once per family instead (the family models contain every
# block), except that blocks holding constant tensors (Swin's shifted-window mask, the resize
# matrices) are also exported on their own.
LIGHT = dict(run_export_check=False, run_training_check=False)


def _randn(*shape, scale=1.0):
    return (RNG.normal(size=shape) * scale).astype("float32")


def _w(layer):
    """Kernel and bias of a Dense as float64 numpy (bias zeros when absent)."""
    kernel = np.asarray(layer.kernel, dtype=np.float64)
    bias = (np.asarray(layer.bias, dtype=np.float64) if layer.bias is not None
            else np.zeros(kernel.shape[-1]))
    return kernel, bias


def _dense(x, layer):
    kernel, bias = _w(layer)
    return x @ kernel + bias


def _softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _layer_norm(x, layer, eps):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * np.asarray(layer.gamma) + np.asarray(layer.beta)


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _heads(x, h):
    """(B, N, D) -> (B, h, N, D / h), head j taking features [j d, (j + 1) d)."""
    b, n, d = x.shape
    return x.reshape(b, n, h, d // h).transpose(0, 2, 1, 3)


def _unheads(x):
    b, h, n, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n, h * d)


def _np_mhsa(x, attn, bias=None, mask=None):
    """ViT Eq. 2-3 / Swin Eq. 4: per head softmax(q k^T / sqrt(d) + B) v, then proj."""
    d = x.shape[-1]
    qkv = _dense(x, attn.qkv)
    q, k, v = (_heads(qkv[..., i * d:(i + 1) * d], attn.num_heads) for i in range(3))
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d // attn.num_heads)
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        nw = mask.shape[0]
        logits = (logits.reshape(-1, nw, *logits.shape[1:]) + mask[None, :, None]).reshape(
            logits.shape)
    return _dense(_unheads(_softmax(logits) @ v), attn.proj)


def _np_block(x, block, attention):
    """Pre-norm block: x + attn(LN(x)); x + fc2(gelu(fc1(LN(x))))."""
    x = x + attention(_layer_norm(x, block.norm1, block.epsilon))
    h = _gelu(_dense(_layer_norm(x, block.norm2, block.epsilon), block.mlp.fc1))
    return x + _dense(h, block.mlp.fc2)


def _randomise(layer, scale=0.3):
    """Non-trivial weights: LayerNorm scales away from 1, biases away from 0."""
    for variable in layer.weights:
        variable.assign(np.asarray(variable) + _randn(*variable.shape, scale=scale))


# --- shared blocks ---------------------------------------------------------------------------

def test_multi_head_self_attention_matches_numpy_and_harness():
    x = _randn(2, 5, 8)
    layer = run_layer_test(MultiHeadSelfAttention, {"num_heads": 2, "qkv_bias": True}, x,
                           expected_output_shape=(2, 5, 8), **LIGHT)
    _randomise(layer)
    np.testing.assert_allclose(layer(x).numpy(), _np_mhsa(x.astype(np.float64), layer),
                               atol=1e-5, rtol=1e-5)
    small = MultiHeadSelfAttention(num_heads=2)
    small(_randn(1, 3, 4))
    check_gradients(small, _randn(1, 3, 4))


def test_transformer_block_matches_numpy():
    x = _randn(2, 4, 8)
    block = run_layer_test(TransformerBlock, {"num_heads": 2, "mlp_ratio": 2.0,
                                              "drop_path": 0.1, "epsilon": 1e-6}, x,
                           expected_output_shape=(2, 4, 8), **LIGHT)
    _randomise(block)
    expected = _np_block(x.astype(np.float64), block, lambda t: _np_mhsa(t, block.attn))
    np.testing.assert_allclose(block(x).numpy(), expected, atol=1e-5, rtol=1e-5)
    # Stochastic depth is the identity at inference and random in training.
    assert not np.allclose(block(x, training=True).numpy(), expected, atol=1e-3)


def test_drop_path_keeps_or_drops_whole_samples():
    layer = DropPath(0.5, seed=3)
    x = np.ones((64, 3, 2), dtype="float32")
    np.testing.assert_array_equal(layer(x).numpy(), x)
    y = layer(x, training=True).numpy()
    per_sample = y.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert np.all(per_sample.min(1) == per_sample.max(1)), "a sample was partly dropped"
    assert 10 < (per_sample[:, 0] == 0).sum() < 54
    with pytest.raises(ValueError, match="rate must be in"):
        DropPath(1.0)


def test_patch_embedding_is_a_per_patch_linear_map():
    x = _randn(2, 9, 8, 3)  # 9 rows: the last row is dropped, as a valid conv drops it
    layer = run_layer_test(PatchEmbedding, {"patch_size": 4, "embed_dim": 5}, x,
                           expected_output_shape=(2, 4, 5), **LIGHT)
    kernel = np.asarray(layer.proj.kernel, dtype=np.float64)  # (4, 4, 3, 5)
    bias = np.asarray(layer.proj.bias, dtype=np.float64)
    patches = x[:, :8].reshape(2, 2, 4, 2, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 4, 48)
    expected = patches @ kernel.reshape(48, 5) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5, rtol=1e-5)
    assert layer.grid_size == (2, 2)
    with pytest.raises(ValueError, match="smaller than patch_size"):
        PatchEmbedding(16, 4)(np.zeros((1, 8, 8, 1), "float32"))


def test_class_token_and_position_embedding():
    x = _randn(3, 4, 6)
    cls = run_layer_test(PrependClassToken, {}, x, expected_output_shape=(3, 5, 6), **LIGHT)
    out = cls(x).numpy()
    np.testing.assert_array_equal(out[:, 1:], x)
    np.testing.assert_allclose(out[:, 0], np.broadcast_to(np.asarray(cls.cls_token)[0], (3, 6)))
    pos = run_layer_test(PositionEmbedding, {}, x, expected_output_shape=(3, 4, 6), **LIGHT)
    np.testing.assert_allclose(pos(x).numpy(), x + np.asarray(pos.pos_embed), atol=1e-6)


def _reference_resize(image, size, antialias):
    """PyTorch's bicubic ``F.interpolate`` by independent implementations of the same kernels:
    OpenCV's INTER_CUBIC (a = -0.75, half-pixel centres, no antialiasing) and PIL's BICUBIC
    (a = -0.5, antialiased), which agree with PyTorch to 1e-6 on float32 images."""
    import cv2
    from PIL import Image

    h, w = size
    image = np.asarray(image, dtype=np.float32)
    if antialias:
        return np.asarray(Image.fromarray(image, mode="F").resize((w, h), Image.BICUBIC))
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("src, dst", [(15, 14), (12, 5), (5, 12), (7, 7)])
def test_bicubic_matrix_equals_reference_resize(src, dst, antialias):
    x = RNG.normal(size=(src, src + 2))
    rows = bicubic_resize_matrix(src, dst, antialias)
    cols = bicubic_resize_matrix(src + 2, dst + 1, antialias)
    np.testing.assert_allclose(rows @ x @ cols.T,
                               _reference_resize(x, (dst, dst + 1), antialias), atol=2e-5)
    np.testing.assert_allclose(rows.sum(1), 1.0, atol=1e-12)  # constants are preserved


def test_resize_image_layer():
    x = _randn(2, 10, 10, 1)
    layer = run_layer_test(ResizeImage, {"size": (7, 8)}, x, expected_output_shape=(2, 7, 8, 1),
                           run_training_check=False)
    for i in range(2):
        np.testing.assert_allclose(layer(x).numpy()[i, ..., 0],
                                   _reference_resize(x[i, ..., 0], (7, 8), False), atol=1e-5)
    small = ResizeImage(size=3)
    small(_randn(1, 4, 4, 1))
    check_gradients(small, _randn(1, 4, 4, 1))


# --- Swin --------------------------------------------------------------------------------------

def _np_window_attention(x_windows, attn, mask=None):
    wh, ww = attn.window_size
    coords = [(i, j) for i in range(wh) for j in range(ww)]
    table = np.asarray(attn.relative_position_bias_table, dtype=np.float64)
    bias = np.empty((attn.num_heads, len(coords), len(coords)))
    for a, (yi, xi) in enumerate(coords):
        for b, (yj, xj) in enumerate(coords):
            # Eq. 4: B indexed by the relative offset (dy, dx) in [-(M-1), M-1]^2.
            bias[:, a, b] = table[(yi - yj + wh - 1) * (2 * ww - 1) + (xi - xj + ww - 1)]
    return _np_mhsa(x_windows, attn, bias[None], mask)


def _np_swin_block(x, block):
    """Swin Eq. 3 with W-MSA / SW-MSA computed window by window from the definitions."""
    b, h, w, c = x.shape
    (wh, ww), (sh, sw) = block.window, block.shift
    hp, wp = -(-h // wh) * wh, -(-w // ww) * ww

    def attention(t):
        t = np.roll(t, (-sh, -sw), axis=(1, 2))
        t = np.pad(t, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
        # Regions of the shifted map (Fig. 4): cut at hp - window and hp - shift per axis.
        region = np.zeros((hp, wp))
        if sh or sw:
            rcut = np.searchsorted([hp - wh, hp - sh], np.arange(hp), side="right")
            ccut = np.searchsorted([wp - ww, wp - sw], np.arange(wp), side="right")
            region = rcut[:, None] * 3 + ccut[None, :]
        windows, masks = [], []
        for i in range(0, hp, wh):
            for j in range(0, wp, ww):
                windows.append(t[:, i:i + wh, j:j + ww].reshape(b, wh * ww, c))
                r = region[i:i + wh, j:j + ww].reshape(-1)
                masks.append(np.where(r[:, None] == r[None, :], 0.0, -100.0))
        nw = len(windows)
        stacked = np.stack(windows, 1).reshape(b * nw, wh * ww, c)
        out = _np_window_attention(stacked, block.attn, np.stack(masks) if (sh or sw) else None)
        out = out.reshape(b, nw, wh * ww, c)
        full = np.zeros((b, hp, wp, c))
        k = 0
        for i in range(0, hp, wh):
            for j in range(0, wp, ww):
                full[:, i:i + wh, j:j + ww] = out[:, k].reshape(b, wh, ww, c)
                k += 1
        return np.roll(full[:, :h, :w], (sh, sw), axis=(1, 2))

    return _np_block(x, block, attention)


@pytest.mark.parametrize("size, window, shift, expect", [
    ((6, 6), 3, 1, ((3, 3), (1, 1))),      # shifted windows with the -100 mask
    ((5, 7), 3, 1, ((3, 3), (1, 1))),      # odd sizes: padded to whole windows
    ((3, 5), 4, 2, ((3, 4), (0, 2))),      # map smaller than the window along one axis
    ((2, 2), 7, 3, ((2, 2), (0, 0))),      # whole map is one window, no shift
])
def test_swin_block_matches_numpy(size, window, shift, expect):
    x = _randn(2, *size, 8)
    block = SwinBlock(num_heads=2, window_size=window, shift_size=shift, mlp_ratio=2.0)
    block(x)
    assert (block.window, block.shift) == expect
    _randomise(block)
    np.testing.assert_allclose(block(x).numpy(), _np_swin_block(x.astype(np.float64), block),
                               atol=2e-5, rtol=1e-5)


def test_swin_layers_harness_and_gradients():
    x = _randn(2, 5, 5, 4)
    run_layer_test(SwinBlock, {"num_heads": 2, "window_size": 3, "shift_size": 1,
                               "drop_path": 0.1}, x, expected_output_shape=(2, 5, 5, 4),
                   run_training_check=False)
    merge = run_layer_test(PatchMerging, {"out_dim": 6}, x, expected_output_shape=(2, 3, 3, 6),
                           **LIGHT)
    # 2x2 neighbourhoods in timm's order (0,0), (1,0), (0,1), (1,1), zero-padded when odd.
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 1), (0, 1), (0, 0)))
    cat = np.concatenate([xp[:, 0::2, 0::2], xp[:, 1::2, 0::2], xp[:, 0::2, 1::2],
                          xp[:, 1::2, 1::2]], -1)
    expected = _layer_norm(cat, merge.norm, 1e-5) @ np.asarray(merge.reduction.kernel)
    np.testing.assert_allclose(merge(x).numpy(), expected, atol=1e-5, rtol=1e-5)
    attn = WindowAttention(num_heads=2, window_size=2)
    windows = _randn(2, 4, 4)
    attn(windows)
    np.testing.assert_allclose(attn(windows).numpy(),
                               _np_window_attention(windows.astype(np.float64), attn),
                               atol=1e-5, rtol=1e-5)
    check_gradients(attn, _randn(1, 4, 4))
    with pytest.raises(ValueError, match="shift_size must be in"):
        SwinBlock(2, window_size=4, shift_size=4)


# --- ConViT ------------------------------------------------------------------------------------

def _np_gpsa(x, layer):
    """ConViT Eq. 5: gated mix of content and positional attention, renormalised."""
    b, n, d = x.shape
    h = layer.num_heads
    g = int(round(n ** 0.5))
    qk = _dense(x, layer.qk)
    q, k = _heads(qk[..., :d], h), _heads(qk[..., d:], h)
    content = _softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(d // h))
    r = np.zeros((n, n, 3))
    for i in range(n):
        for j in range(n):
            dy, dx = j // g - i // g, j % g - i % g
            r[i, j] = (dx, dy, dx * dx + dy * dy)
    position = _softmax(_dense(r, layer.pos_proj).transpose(2, 0, 1))
    gate = 1.0 / (1.0 + np.exp(-np.asarray(layer.gating_param, dtype=np.float64)))
    attn = (1 - gate[:, None, None]) * content + gate[:, None, None] * position[None]
    attn = attn / attn.sum(-1, keepdims=True)
    return _dense(_unheads(attn @ _heads(_dense(x, layer.v), h)), layer.proj)


def test_gpsa_matches_numpy_and_starts_convolutional():
    x = _randn(2, 9, 18)
    layer = run_layer_test(GatedPositionalSelfAttention,
                           {"num_heads": 9, "locality_strength": 2.0}, x,
                           expected_output_shape=(2, 9, 18), **LIGHT)
    # Local initialisation (Sec. 3): v is the identity and head (h1, h2) of the 3x3 grid of
    # heads attends positionally around offset (dx, dy) = (h2 - 1, h1 - 1).
    fresh = GatedPositionalSelfAttention(num_heads=9, locality_strength=2.0)
    fresh(np.zeros((1, 25, 18), "float32"))
    np.testing.assert_array_equal(np.asarray(fresh.v.kernel), np.eye(18))
    # Positional scores of the middle patch of a 5x5 grid towards every patch.
    offsets = _dense(np.array([[[j % 5 - 2, j // 5 - 2, (j % 5 - 2) ** 2 + (j // 5 - 2) ** 2]
                                for j in range(25)]], dtype=np.float64), fresh.pos_proj)[0]
    for head in range(9):
        h1, h2 = head % 3, head // 3
        peak = int(np.argmax(offsets[:, head]))
        assert (peak % 5 - 2, peak // 5 - 2) == (h2 - 1, h1 - 1), f"head {head} peaks at {peak}"
    _randomise(layer)
    np.testing.assert_allclose(layer(x).numpy(), _np_gpsa(x.astype(np.float64), layer),
                               atol=1e-5, rtol=1e-5)
    small = GatedPositionalSelfAttention(num_heads=2)
    small(_randn(1, 4, 4))
    check_gradients(small, _randn(1, 4, 4))
    with pytest.raises(ValueError, match="square patch grid"):
        GatedPositionalSelfAttention(num_heads=2)(np.zeros((1, 6, 4), "float32"))


# --- CrossViT ----------------------------------------------------------------------------------

def _np_cross_attention(x, attn):
    """CrossViT Eq. 7: the class token is the only query over all tokens."""
    h = attn.num_heads
    q = _heads(_dense(x[:, :1], attn.wq), h)
    k, v = _heads(_dense(x, attn.wk), h), _heads(_dense(x, attn.wv), h)
    a = _softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(x.shape[-1] // h))
    return _dense(_unheads(a @ v), attn.proj)


def _np_projection(t, proj):
    return _dense(_gelu(_layer_norm(t, proj.norm, proj.epsilon)), proj.fc)


def test_cross_attention_and_multiscale_block_match_numpy():
    x = _randn(2, 5, 8)
    attn = run_layer_test(CrossAttention, {"num_heads": 2}, x, expected_output_shape=(2, 1, 8),
                          **LIGHT)
    _randomise(attn)
    np.testing.assert_allclose(attn(x).numpy(), _np_cross_attention(x.astype(np.float64), attn),
                               atol=1e-5, rtol=1e-5)
    small = CrossAttention(num_heads=1)
    small(_randn(1, 3, 2))
    check_gradients(small, _randn(1, 3, 2))

    xs = [_randn(2, 5, 8), _randn(2, 3, 12)]
    block = MultiScaleBlock(depth=(1, 2, 0), num_heads=(2, 3), mlp_ratio=(2.0, 1.0))
    block(xs)
    _randomise(block)
    x64 = [t.astype(np.float64) for t in xs]
    outs = []
    for d, t in enumerate(x64):
        for layer in block.branch(d):
            t = _np_block(t, layer, lambda u, layer=layer: _np_mhsa(u, layer.attn))
        outs.append(t)
    expected = []
    for d in range(2):
        other = outs[1 - d]
        cls = _np_projection(outs[d][:, :1], block.projs[d])
        seq = np.concatenate([cls, other[:, 1:]], 1)
        fusion = block.fusions(d)[0]
        # Eq. 8: x_cls + CA(LN([x_cls || patches of the other branch])), projected back.
        cls = seq[:, :1] + _np_cross_attention(_layer_norm(seq, fusion.norm1, 1e-6), fusion.attn)
        expected.append(np.concatenate([_np_projection(cls, block.revert_projs[d]),
                                        outs[d][:, 1:]], 1))
    for got, want in zip(block(xs), expected):
        np.testing.assert_allclose(got.numpy(), want, atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="depth must list"):
        MultiScaleBlock(depth=(1, 0), num_heads=(2,), mlp_ratio=(1.0,))


# --- hybrid ViT stem -----------------------------------------------------------------------------

def test_std_conv_standardises_weights_and_pads_same():
    x = _randn(2, 7, 6, 3)
    layer = run_layer_test(StdConv2D, {"filters": 4, "kernel_size": 3, "strides": 2,
                                       "padding": "same", "use_bias": False,
                                       "weight_eps": 1e-8}, x,
                           expected_output_shape=(2, 4, 3, 4), **LIGHT)
    w = np.asarray(layer.kernel, dtype=np.float64)
    w = (w - w.mean(axis=(0, 1, 2))) / np.sqrt(w.var(axis=(0, 1, 2)) + 1e-8)
    # TensorFlow "SAME": total padding max((out - 1) * s + k - in, 0), the extra pixel last.
    pad_h, pad_w = max(3 * 2 + 3 - 7, 0), max(2 * 2 + 3 - 6, 0)
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                                       (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    expected = np.zeros((2, 4, 3, 4))
    for i in range(4):
        for j in range(3):
            patch = xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            expected[:, i, j] = np.einsum("bhwc,hwco->bo", patch, w)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-4, rtol=1e-4)
    # Rescaling a filter's weights changes nothing: they are standardised first.
    layer.kernel.assign(np.asarray(layer.kernel) * 3.0 + 1.0)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-4, rtol=1e-4)
    small = StdConv2D(2, 2, padding="same", use_bias=False)
    small(_randn(1, 3, 3, 1))
    check_gradients(small, _randn(1, 3, 3, 1))


# --- families --------------------------------------------------------------------------------------

def test_registry_lists_the_transformer_families():
    names = set(list_architectures())
    for arch in ("vit_tiny_patch16", "vit_small_patch16", "vit_base_patch16",
                 "deit_tiny_patch16", "deit_small_patch16", "swin_tiny_patch4_window7",
                 "convit_tiny", "convit_base", "crossvit_tiny", "crossvit_base",
                 "vit_base_r50_s16", "vit_small_r26_s32"):
        assert arch in names
    assert get_architecture("vit_base_patch16").mean == (0.5, 0.5, 0.5)
    assert get_architecture("deit_tiny_patch16").mean == (0.485, 0.456, 0.406)
    assert get_architecture("crossvit_base").default_input_shape == (240, 240, 3)
    assert get_architecture("vit_base_r50_s16").timm_name == "vit_base_r50_s16_224"


@pytest.mark.parametrize("arch, options, word", [
    ("vit_tiny_patch16", dict(embed_dim=10, num_heads=3), "divisible by num_heads"),
    ("vit_tiny_patch16", dict(patch_size=7), "multiples of patch_size"),
    ("swin_tiny_patch4_window7", dict(depths=(2, 2), num_heads=(1,)), "equal length"),
    ("swin_tiny_patch4_window7", dict(drop_path_rate=1.5), "drop_path_rate"),
    ("convit_tiny", dict(depth=2, local_up_to_layer=2), "local_up_to_layer"),
    ("crossvit_tiny", dict(embed_dim=(8, 16, 32)), "embed_dim needs one entry per branch"),
    ("crossvit_tiny", dict(patch_size=(12, 64)), "smaller than its patch size"),
    ("vit_small_r26_s32", dict(layers=(1, 1, 1, 1, 1)), "layers must list"),
])
def test_bad_options_name_the_argument(arch, options, word):
    with pytest.raises(ValueError, match=word):
        create_model(arch, input_shape=(48, 48, 1), **options)


def test_convit_needs_a_square_grid_and_hybrid_a_large_enough_image():
    with pytest.raises(ValueError, match="square patch grid"):
        create_model("convit_tiny", **dict(get_architecture("convit_tiny").test_options,
                                           input_shape=(48, 32, 1)))
    with pytest.raises(ValueError, match="smaller than the stem's stride"):
        create_model("vit_small_r26_s32", input_shape=(24, 24, 3), embed_dim=16, depth=1,
                     num_heads=2)
