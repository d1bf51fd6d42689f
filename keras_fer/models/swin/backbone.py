"""Swin Transformer (Liu et al. 2021) in Keras, layer for layer timm's ``SwinTransformer``.

keras-hub 0.32 ships a ``SwinTransformerBackbone``, but it cannot run the small inputs this
project needs: when a stage's feature map is smaller than the window (48x48 faces: 12, 6, 3, 2
tokens a side against a window of 7) its blocks shrink the window but keep the attention
built for the full window, and the relative-position bias no longer fits (shape error). It
also computes the shifted-window mask on the unpadded map. This implementation follows timm
1.0 exactly, so timm weights convert and any input size works:

- Patch embedding: ``patch_size`` strided convolution, then LayerNorm (Sec. 3.1).
- Stage i > 0 starts with patch merging: 2x2 neighbours concatenated (odd maps zero-padded),
  LayerNorm, linear 4C -> 2C without bias.
- Swin block (Eq. 3): ``x + W-MSA(LN(x))`` then ``x + MLP(LN(x))``; every second block uses
  shifted windows (SW-MSA, cyclic shift by ``window // 2`` with the -100 attention mask of
  Sec. 3.2). Window attention adds a learned relative position bias ``B`` (Eq. 4:
  ``softmax(QK^T / sqrt(d) + B) V``) read from a (2M - 1)^2 table.
- Window clamping (timm): a block whose map is no larger than the window along an axis uses
  the whole map as its window there and does not shift; maps that are not a multiple of the
  window are zero-padded on the bottom/right before partitioning.
- Final LayerNorm; the classifier averages the (B, h, w, C) map (timm's ``avg`` head).
"""

import numpy as np

import keras
from keras import ops

from keras_fer.models.transformer_blocks import (
    DropPath,
    Mlp,
    MultiHeadSelfAttention,
    PatchEmbedding,
    attention_logits,
    check_positive_int,
    check_rank,
    check_rate,
    merge_heads,
    split_heads,
    to_pair,
    trunc_normal,
)

SWIN_EPSILON = 1e-5  # timm's Swin uses nn.LayerNorm's default, not ViT's 1e-6

# The size table: each architecture's defaults for ``swin_backbone``'s size arguments (timm's
# model of the same name with an ``_224`` suffix).
CONFIGS = {
    "swin_tiny_patch4_window7": dict(embed_dim=96, depths=(2, 2, 6, 2),
                                     num_heads=(3, 6, 12, 24), window_size=7),
    "swin_small_patch4_window7": dict(embed_dim=96, depths=(2, 2, 18, 2),
                                      num_heads=(3, 6, 12, 24), window_size=7),
    "swin_base_patch4_window7": dict(embed_dim=128, depths=(2, 2, 18, 2),
                                     num_heads=(4, 8, 16, 32), window_size=7),
}


def relative_position_index(window):
    """(N, N) indices into the (2 wh - 1) * (2 ww - 1) bias table for an (wh, ww) window:
    ``(dy + wh - 1) * (2 ww - 1) + (dx + ww - 1)`` for each query/key pair (row-major)."""
    wh, ww = window
    coords = np.stack(np.meshgrid(np.arange(wh), np.arange(ww), indexing="ij")).reshape(2, -1)
    rel = coords[:, :, None] - coords[:, None, :]
    return (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)


def shifted_window_mask(padded_size, window, shift):
    """(num_windows, N, N) additive mask (0 or -100) for shifted windows, timm's
    ``get_attn_mask``: after the cyclic shift, tokens from different source regions of the
    (padded) map must not attend to each other."""
    hp, wp = padded_size
    labels = np.zeros((hp, wp), dtype=np.float32)
    count = 0
    for rows in (slice(0, -window[0]), slice(-window[0], -shift[0]), slice(-shift[0], None)):
        for cols in (slice(0, -window[1]), slice(-window[1], -shift[1]), slice(-shift[1], None)):
            labels[rows, cols] = count
            count += 1
    windows = labels.reshape(hp // window[0], window[0], wp // window[1], window[1])
    windows = windows.transpose(0, 2, 1, 3).reshape(-1, window[0] * window[1])
    diff = windows[:, None, :] - windows[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype(np.float32)


def clamp_window(resolution, window, shift):
    """timm's ``_calc_window_shift``: a map no larger than the window along an axis becomes
    the window there, with no shift."""
    window = tuple(r if r <= w else w for r, w in zip(resolution, window))
    shift = tuple(0 if r <= w else s for r, w, s in zip(resolution, window, shift))
    return window, shift


@keras.saving.register_keras_serializable(package="keras_fer")
class WindowAttention(MultiHeadSelfAttention):
    """Multi-head self-attention inside (B * windows, N, C) windows with a learned relative
    position bias (Swin Eq. 4); an optional (windows, N, N) additive ``attention_mask`` blocks
    attention across the seams of shifted windows."""

    def __init__(self, num_heads, window_size, qkv_bias=True, attn_drop=0.0, proj_drop=0.0,
                 **kwargs):
        super().__init__(num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                         proj_drop=proj_drop, **kwargs)
        self.window_size = to_pair(window_size, "window_size")
        self._index = relative_position_index(self.window_size).reshape(-1)

    def build(self, input_shape):
        check_rank(input_shape, 3, type(self).__name__, "windows (batch*windows, tokens, dim)")
        area = self.window_size[0] * self.window_size[1]
        if input_shape[1] is not None and input_shape[1] != area:
            raise ValueError(f"WindowAttention with window {self.window_size} expects {area} "
                             f"tokens per window, got input shape {tuple(input_shape)}")
        wh, ww = self.window_size
        self.relative_position_bias_table = self.add_weight(
            shape=((2 * wh - 1) * (2 * ww - 1), self.num_heads), initializer=trunc_normal(),
            name="relative_position_bias_table")
        super().build(input_shape)

    def relative_bias(self):
        """(heads, N, N) bias gathered from the table."""
        n = self.window_size[0] * self.window_size[1]
        # Gathering from the (heads, entries) transpose yields heads-first directly, and its
        # gradient reaches the table as a dense tensor rather than IndexedSlices.
        bias = ops.take(ops.transpose(self.relative_position_bias_table), self._index, axis=1)
        return ops.reshape(bias, (self.num_heads, n, n))

    def call(self, x, attention_mask=None, training=None):
        q, k, v = split_heads(self.qkv(x), 3, self.num_heads)
        n = x.shape[1]
        logits = attention_logits(q, k) + ops.cast(self.relative_bias(), x.dtype)[None]
        if attention_mask is not None:
            # Windows are batch-major: (B * windows) -> (B, windows) to add each window's mask.
            windows = attention_mask.shape[0]
            logits = ops.reshape(logits, (-1, windows, self.num_heads, n, n))
            logits = logits + ops.cast(attention_mask, x.dtype)[None, :, None]
            logits = ops.reshape(logits, (-1, self.num_heads, n, n))
        attn = ops.softmax(logits, axis=-1)
        attn = self.attn_dropout(attn, training=training)
        return self.proj_dropout(self.proj(merge_heads(ops.matmul(attn, v))), training=training)

    def get_config(self):
        return {**super().get_config(), "window_size": self.window_size}


@keras.saving.register_keras_serializable(package="keras_fer")
class SwinBlock(keras.layers.Layer):
    """One Swin block on a (B, H, W, C) map (Swin Eq. 3).

    ``window_size`` and ``shift_size`` are the targets; the effective window and shift
    (``self.window``, ``self.shift``) follow timm's clamping for the map size seen at build.
    """

    def __init__(self, num_heads, window_size=7, shift_size=0, mlp_ratio=4.0, qkv_bias=True,
                 drop=0.0, attn_drop=0.0, drop_path=0.0, epsilon=SWIN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.window_size = to_pair(window_size, "window_size")
        shift = tuple(shift_size) if isinstance(shift_size, (list, tuple)) else (shift_size,) * 2
        if any(s < 0 or s >= w for s, w in zip(shift, self.window_size)):
            raise ValueError(f"shift_size must be in [0, window_size), got {shift_size} for "
                             f"window_size {self.window_size}")
        self.shift_size = tuple(int(s) for s in shift)
        if float(mlp_ratio) <= 0:
            raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio}")
        self.mlp_ratio = float(mlp_ratio)
        self.qkv_bias = bool(qkv_bias)
        self.drop = check_rate(drop, "drop")
        self.attn_drop = check_rate(attn_drop, "attn_drop")
        self.drop_path = check_rate(drop_path, "drop_path")
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        check_rank(input_shape, 4, type(self).__name__, "a (batch, height, width, dim) map")
        h, w, dim = input_shape[1], input_shape[2], input_shape[3]
        if h is None or w is None:
            raise ValueError(f"SwinBlock needs a fixed map size, got {tuple(input_shape)}")
        self.window, self.shift = clamp_window((h, w), self.window_size, self.shift_size)
        self.padded = tuple(-(-r // s) * s for r, s in zip((h, w), self.window))
        self._mask = (shifted_window_mask(self.padded, self.window, self.shift)
                      if any(self.shift) else None)
        self.norm1 = keras.layers.LayerNormalization(epsilon=self.epsilon,
                                                     dtype=self.dtype_policy, name="norm1")
        self.norm1.build(input_shape)
        area = self.window[0] * self.window[1]
        self.attn = WindowAttention(self.num_heads, self.window, qkv_bias=self.qkv_bias,
                                    attn_drop=self.attn_drop, proj_drop=self.drop,
                                    dtype=self.dtype_policy, name="attn")
        self.attn.build((None, area, dim))
        self.norm2 = keras.layers.LayerNormalization(epsilon=self.epsilon,
                                                     dtype=self.dtype_policy, name="norm2")
        self.norm2.build(input_shape)
        self.mlp = Mlp(int(dim * self.mlp_ratio), drop=self.drop, dtype=self.dtype_policy,
                       name="mlp")
        self.mlp.build(input_shape)
        self.drop_path_layer = DropPath(self.drop_path, dtype=self.dtype_policy)

    def _window_attention(self, x, training):
        h, w, dim = x.shape[1], x.shape[2], x.shape[3]
        (wh, ww), (hp, wp) = self.window, self.padded
        if any(self.shift):
            x = ops.roll(x, shift=(-self.shift[0], -self.shift[1]), axis=(1, 2))
        if (hp, wp) != (h, w):
            x = ops.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
        x = ops.reshape(x, (-1, hp // wh, wh, wp // ww, ww, dim))
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, wh * ww, dim))
        mask = None if self._mask is None else ops.convert_to_tensor(self._mask)
        x = self.attn(x, attention_mask=mask, training=training)
        x = ops.reshape(x, (-1, hp // wh, wp // ww, wh, ww, dim))
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, hp, wp, dim))
        x = x[:, :h, :w, :]
        if any(self.shift):
            x = ops.roll(x, shift=self.shift, axis=(1, 2))
        return x

    def call(self, x, training=None):
        x = x + self.drop_path_layer(self._window_attention(self.norm1(x), training),
                                     training=training)
        return x + self.drop_path_layer(self.mlp(self.norm2(x), training=training),
                                        training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads,
                "window_size": self.window_size, "shift_size": self.shift_size,
                "mlp_ratio": self.mlp_ratio, "qkv_bias": self.qkv_bias, "drop": self.drop,
                "attn_drop": self.attn_drop, "drop_path": self.drop_path,
                "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_fer")
class PatchMerging(keras.layers.Layer):
    """Swin's downsampling: (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), out_dim).

    Each 2x2 neighbourhood is concatenated in timm's order (top-left, bottom-left, top-right,
    bottom-right), normalised and projected without bias; odd maps are zero-padded first.
    """

    def __init__(self, out_dim=None, epsilon=SWIN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.out_dim = None if out_dim is None else check_positive_int(out_dim, "out_dim")
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        check_rank(input_shape, 4, type(self).__name__, "a (batch, height, width, dim) map")
        dim = input_shape[-1]
        self.norm = keras.layers.LayerNormalization(epsilon=self.epsilon,
                                                    dtype=self.dtype_policy, name="norm")
        self.norm.build((None, None, None, 4 * dim))
        self.reduction = keras.layers.Dense(self.out_dim or 2 * dim, use_bias=False,
                                            kernel_initializer=trunc_normal(),
                                            dtype=self.dtype_policy, name="reduction")
        self.reduction.build((None, None, None, 4 * dim))

    def call(self, x):
        h, w, dim = x.shape[1], x.shape[2], x.shape[3]
        if h % 2 or w % 2:
            x = ops.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
            h, w = h + h % 2, w + w % 2
        x = ops.reshape(x, (-1, h // 2, 2, w // 2, 2, dim))
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 4, 2, 5)), (-1, h // 2, w // 2, 4 * dim))
        return self.reduction(self.norm(x))

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        return (input_shape[0], (h + 1) // 2, (w + 1) // 2, self.out_dim or 2 * input_shape[3])

    def get_config(self):
        return {**super().get_config(), "out_dim": self.out_dim, "epsilon": self.epsilon}


def swin_backbone(input_shape, patch_size=4, embed_dim=96, depths=(2, 2, 6, 2),
                  num_heads=(3, 6, 12, 24), window_size=7, mlp_ratio=4.0, qkv_bias=True,
                  drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.1, name=None):
    """Images -> the final-normalised (B, h, w, embed_dim * 2^(stages - 1)) feature map.

    Layer names are timm's module paths with "_" for "." (``layers_1_blocks_0``...).
    ``drop_path_rate`` rises linearly over all blocks (timm's default 0.1).
    """
    depths, num_heads = tuple(depths), tuple(num_heads)
    if not depths or len(depths) != len(num_heads):
        raise ValueError(f"depths and num_heads must be non-empty and of equal length, got "
                         f"{depths} and {num_heads}")
    for depth in depths:
        check_positive_int(depth, "depths")
    embed_dim = check_positive_int(embed_dim, "embed_dim")
    for i, heads in enumerate(num_heads):
        if (embed_dim * 2 ** i) % check_positive_int(heads, "num_heads"):
            raise ValueError(f"stage {i} width {embed_dim * 2 ** i} must be divisible by "
                             f"num_heads[{i}] = {heads}")
    window = to_pair(window_size, "window_size")
    rates = np.linspace(0.0, check_rate(drop_path_rate, "drop_path_rate"), sum(depths))
    inputs = keras.Input(tuple(input_shape), name="images")
    x = PatchEmbedding(patch_size, embed_dim, flatten=False, name="patch_embed")(inputs)
    x = keras.layers.LayerNormalization(epsilon=SWIN_EPSILON, name="patch_embed_norm")(x)
    x = keras.layers.Dropout(check_rate(drop_rate, "drop_rate"), name="pos_drop")(x)
    block = 0
    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        if i > 0:
            x = PatchMerging(embed_dim * 2 ** i, name=f"layers_{i}_downsample")(x)
        for j in range(depth):
            shift = 0 if j % 2 == 0 else tuple(s // 2 for s in window)
            x = SwinBlock(heads, window, shift, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                          drop=drop_rate, attn_drop=attn_drop_rate,
                          drop_path=float(rates[block]), name=f"layers_{i}_blocks_{j}")(x)
            block += 1
    x = keras.layers.LayerNormalization(epsilon=SWIN_EPSILON, name="norm")(x)
    return keras.Model(inputs, x, name=name)
