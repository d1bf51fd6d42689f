"""ConViT (d'Ascoli et al. 2021): a ViT whose first blocks use gated positional self-attention.

Seed 001 (Sec. 3.5) compares ``convit_base`` with CNNs and other ViTs on CK+48 and JAFFE. A
GPSA head mixes content attention with a purely positional attention through a learned gate:

    A_h = (1 - sigmoid(lambda_h)) softmax(Q_h K_h^T / sqrt(d_h))
          + sigmoid(lambda_h) softmax(v_h^T r_ij)

(the paper's Eq. 5), where ``r_ij = (dx, dy, dx^2 + dy^2)`` is the offset between patches i and
j and ``v_h`` (``pos_proj``) is initialised so head h attends around its own offset in a
sqrt(H) x sqrt(H) grid: at initialisation each GPSA layer acts like a convolution (the
"soft convolutional inductive bias"), and the gates (initialised to sigmoid(1)) let training
decide how far to leave it. The value projection starts as the identity. After
``local_up_to_layer`` GPSA blocks the class token is inserted and ordinary multi-head
self-attention blocks follow (the class token is kept out of the local layers, as the paper
does, so positional attention needs only patches). Matches timm's ``ConVit`` layer for layer.

``embed_dim`` here is the total width; timm's ``convit_*`` constructors take ``embed_dim`` per
head (48) and multiply it by ``num_heads``. The patch grid must be square (the positional
offsets assume it, as in timm).
"""

import math

import numpy as np

import keras
from keras import ops

from keras_fer.models.transformer_blocks import (
    PatchEmbedding,
    PositionEmbedding,
    PrependClassToken,
    TransformerBlock,
    attention_scores,
    check_positive_int,
    check_rank,
    check_rate,
    merge_heads,
    split_heads,
    trunc_normal,
)

# The size table: each architecture's defaults for ``convit_backbone``'s size arguments (timm's
# model of the same name); all: depth 12, 10 GPSA blocks, patch 16.
CONFIGS = {
    "convit_tiny": dict(embed_dim=192, num_heads=4),
    "convit_small": dict(embed_dim=432, num_heads=9),
    "convit_base": dict(embed_dim=768, num_heads=16),
}


def relative_offsets(grid):
    """(N, N, 3) array of (dx, dy, dx^2 + dy^2) from patch i to patch j on a square grid,
    patches numbered row-major (timm's ``get_rel_indices``)."""
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    dx = cols[None, :] - cols[:, None]
    dy = rows[None, :] - rows[:, None]
    return np.stack([dx, dy, dx ** 2 + dy ** 2], axis=-1).astype(np.float32)


def local_position_kernel(num_heads, locality_strength, initial):
    """The (3, heads) ``pos_proj`` kernel of ConViT's local initialisation.

    Head ``h1 + k * h2`` (k = floor(sqrt(heads))) scores patch offsets with
    ``-|r - c_h|^2``-like weights (-1 on the squared distance, 2 (h - centre) on dx/dy), so
    its softmax peaks at offset c_h: a k x k convolution-like pattern. Heads beyond k^2 keep
    their random ``initial`` weights. Everything is scaled by ``locality_strength`` (alpha).
    """
    kernel = np.array(initial, dtype=np.float64)
    k = int(num_heads ** 0.5)
    center = (k - 1) / 2 if k % 2 == 0 else k // 2
    for h1 in range(k):
        for h2 in range(k):
            head = h1 + k * h2
            kernel[2, head] = -1.0
            kernel[1, head] = 2.0 * (h1 - center)
            kernel[0, head] = 2.0 * (h2 - center)
    return kernel * locality_strength


@keras.saving.register_keras_serializable(package="keras_fer")
class GatedPositionalSelfAttention(keras.layers.Layer):
    """Gated positional self-attention (ConViT Eq. 5) over (B, N, D) patch tokens (no class
    token; N must be a square number). See the module docstring."""

    def __init__(self, num_heads, qkv_bias=False, locality_strength=1.0, attn_drop=0.0,
                 proj_drop=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.qkv_bias = bool(qkv_bias)
        if float(locality_strength) <= 0:
            raise ValueError(f"locality_strength must be > 0, got {locality_strength}")
        self.locality_strength = float(locality_strength)
        self.attn_drop = check_rate(attn_drop, "attn_drop")
        self.proj_drop = check_rate(proj_drop, "proj_drop")

    def build(self, input_shape):
        check_rank(input_shape, 3, type(self).__name__, "patch tokens (batch, tokens, dim)")
        n, dim = input_shape[1], input_shape[2]
        grid = math.isqrt(n) if n else 0
        if not n or grid * grid != n:
            raise ValueError(f"GatedPositionalSelfAttention needs a square patch grid, got {n} "
                             "tokens (input shape {}); use a square image".format(
                                 tuple(input_shape)))
        if dim % self.num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads={self.num_heads}")
        self._offsets = relative_offsets(grid)
        self.qk = keras.layers.Dense(2 * dim, use_bias=self.qkv_bias,
                                     kernel_initializer=trunc_normal(),
                                     dtype=self.dtype_policy, name="qk")
        self.qk.build(input_shape)
        self.v = keras.layers.Dense(dim, use_bias=self.qkv_bias,
                                    kernel_initializer=keras.initializers.Identity(),
                                    dtype=self.dtype_policy, name="v")
        self.v.build(input_shape)
        self.proj = keras.layers.Dense(dim, kernel_initializer=trunc_normal(),
                                       dtype=self.dtype_policy, name="proj")
        self.proj.build(input_shape)
        self.pos_proj = keras.layers.Dense(self.num_heads, kernel_initializer=trunc_normal(),
                                           dtype=self.dtype_policy, name="pos_proj")
        self.pos_proj.build((None, n, n, 3))
        self.pos_proj.kernel.assign(local_position_kernel(
            self.num_heads, self.locality_strength,
            keras.ops.convert_to_numpy(self.pos_proj.kernel)).astype(self.pos_proj.kernel.dtype))
        self.gating_param = self.add_weight(shape=(self.num_heads,), initializer="ones",
                                            name="gating_param")
        self.attn_dropout = keras.layers.Dropout(self.attn_drop, dtype=self.dtype_policy)
        self.proj_dropout = keras.layers.Dropout(self.proj_drop, dtype=self.dtype_policy)

    def attention(self, x):
        """The gated (B, heads, N, N) attention matrix (rows sum to one)."""
        q, k = split_heads(self.qk(x), 2, self.num_heads)
        content = attention_scores(q, k)
        offsets = ops.convert_to_tensor(self._offsets.astype(keras.backend.standardize_dtype(
            x.dtype)))
        position = ops.softmax(ops.transpose(self.pos_proj(offsets), (2, 0, 1)), axis=-1)
        gate = ops.reshape(ops.sigmoid(ops.cast(self.gating_param, x.dtype)), (1, -1, 1, 1))
        attn = (1.0 - gate) * content + gate * position[None]
        return attn / ops.sum(attn, axis=-1, keepdims=True)

    def call(self, x, training=None):
        v = split_heads(self.v(x), 1, self.num_heads)[0]
        attn = self.attn_dropout(self.attention(x), training=training)
        return self.proj_dropout(self.proj(merge_heads(ops.matmul(attn, v))), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "qkv_bias": self.qkv_bias,
                "locality_strength": self.locality_strength, "attn_drop": self.attn_drop,
                "proj_drop": self.proj_drop}


@keras.saving.register_keras_serializable(package="keras_fer")
class GPSABlock(TransformerBlock):
    """A ``TransformerBlock`` whose token mixer is ``GatedPositionalSelfAttention``."""

    def __init__(self, num_heads, locality_strength=1.0, **kwargs):
        super().__init__(num_heads, **kwargs)
        self.locality_strength = float(locality_strength)

    def make_attention(self):
        return GatedPositionalSelfAttention(
            self.num_heads, qkv_bias=self.qkv_bias, locality_strength=self.locality_strength,
            attn_drop=self.attn_drop, proj_drop=self.drop, dtype=self.dtype_policy, name="attn")

    def get_config(self):
        return {**super().get_config(), "locality_strength": self.locality_strength}


def convit_backbone(input_shape, patch_size=16, embed_dim=768, depth=12, num_heads=16,
                    local_up_to_layer=10, locality_strength=1.0, mlp_ratio=4.0, qkv_bias=False,
                    drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0, name=None):
    """Images -> final-normalised (B, 1 + N, D) tokens, class token first.

    Layer names are timm's (``patch_embed``, ``pos_embed``, ``cls_token``, ``blocks_i``,
    ``norm``). ``local_up_to_layer`` GPSA blocks come first and must be fewer than ``depth``
    (the class token is inserted before the first ordinary block, and the classifier reads
    it). ``drop_path_rate`` rises linearly over the blocks.
    """
    depth = check_positive_int(depth, "depth")
    num_heads = check_positive_int(num_heads, "num_heads")
    embed_dim = check_positive_int(embed_dim, "embed_dim")
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
    if not isinstance(local_up_to_layer, int) or not 0 <= local_up_to_layer < depth:
        raise ValueError(f"local_up_to_layer must be an integer in [0, depth={depth}), got "
                         f"{local_up_to_layer!r}")
    rates = np.linspace(0.0, check_rate(drop_path_rate, "drop_path_rate"), depth)
    common = dict(mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate,
                  attn_drop=attn_drop_rate, epsilon=1e-6)
    inputs = keras.Input(tuple(input_shape), name="images")
    x = PatchEmbedding(patch_size, embed_dim, name="patch_embed")(inputs)
    x = PositionEmbedding(name="pos_embed")(x)
    x = keras.layers.Dropout(check_rate(drop_rate, "drop_rate"), name="pos_drop")(x)
    for i in range(depth):
        if i == local_up_to_layer:
            x = PrependClassToken(name="cls_token")(x)
        if i < local_up_to_layer:
            block = GPSABlock(num_heads, locality_strength=locality_strength,
                              drop_path=float(rates[i]), name=f"blocks_{i}", **common)
        else:
            block = TransformerBlock(num_heads, drop_path=float(rates[i]), name=f"blocks_{i}",
                                     **common)
        x = block(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    return keras.Model(inputs, x, name=name)
