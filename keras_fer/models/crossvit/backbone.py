"""CrossViT (Chen, Fan & Panda 2021): two ViT branches at two patch sizes fused through their
class tokens. Seed 001 (Sec. 3.6) compares ``crossvit_base`` with CNNs and other ViTs.

- Branch i sees the image at ``img_scale[i]`` of its size (timm resizes the second branch's
  copy 240 -> 224 with PyTorch bicubic; ``ResizeImage`` reproduces that kernel) cut into
  ``patch_size[i]`` patches (12 and 16: the small-patch branch is fine-grained, the other
  coarse), plus its own class token and position embedding.
- A multi-scale block (paper Fig. 2-3) runs each branch's transformer blocks, then fuses by
  cross-attention (Eq. 7-8): branch i's class token, projected to branch j's width
  (LayerNorm, GELU, linear: ``f_i``), is the only query over branch j's patch tokens (linear
  in the number of patches, unlike full attention), the result is added to that token
  (``x_cls + CA(LN([x_cls || x_patches_j]))``) and projected back (``g_i``) to replace branch
  i's class token.
- Both class tokens are LayerNorm-ed at the end. timm averages two linear heads' logits; the
  backbone returns the two class tokens concatenated (B, D_0 + D_1) and the classifier's one
  Dense head over them is exactly that average (its kernel is the two heads stacked, halved),
  so timm weights convert and ``pooling=None``.

Everything matches timm's ``CrossVit`` layer for layer (``crop_scale=False``,
``multi_conv=False``: the "dagger" variants with convolutional patch stems are not built).
"""

import numpy as np

import keras
from keras import ops

from keras_fer.models.classifier import ClsToken
from keras_fer.models.transformer_blocks import (
    DropPath,
    MultiHeadSelfAttention,
    PatchEmbedding,
    PositionEmbedding,
    PrependClassToken,
    ResizeImage,
    TransformerBlock,
    attention_scores,
    check_positive_int,
    check_rate,
    merge_heads,
    split_heads,
    trunc_normal,
)

CROSSVIT_EPSILON = 1e-6

# The size table: each architecture's defaults for ``crossvit_backbone``'s size arguments, per
# branch (timm's model of the same name with a ``_240`` suffix); all: patches (12, 16), depth
# ((1, 4, 0),) * 3, mlp ratio 4, image scales (1, 224/240) at 240x240.
CONFIGS = {
    "crossvit_tiny": dict(embed_dim=(96, 192), num_heads=(3, 3)),
    "crossvit_small": dict(embed_dim=(192, 384), num_heads=(6, 6)),
    "crossvit_base": dict(embed_dim=(384, 768), num_heads=(12, 12)),
}


@keras.saving.register_keras_serializable(package="keras_fer")
class CrossAttention(MultiHeadSelfAttention):
    """Cross-attention of the class token (token 0) over all tokens (CrossViT Eq. 7):
    ``softmax(q_cls k^T / sqrt(d_h)) v`` per head, projected; returns (B, 1, D). timm keeps
    q, k and v as separate projections (``wq``, ``wk``, ``wv``), so they are separate here."""

    def build_query_key_value(self, input_shape):
        for name in ("wq", "wk", "wv"):
            dense = keras.layers.Dense(input_shape[-1], use_bias=self.qkv_bias,
                                       kernel_initializer=trunc_normal(),
                                       dtype=self.dtype_policy, name=name)
            dense.build(input_shape)
            setattr(self, name, dense)

    def call(self, x, training=None):
        q = split_heads(self.wq(x[:, :1]), 1, self.num_heads)[0]
        k = split_heads(self.wk(x), 1, self.num_heads)[0]
        v = split_heads(self.wv(x), 1, self.num_heads)[0]
        attn = self.attn_dropout(attention_scores(q, k), training=training)
        return self.proj_dropout(self.proj(merge_heads(ops.matmul(attn, v))), training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, input_shape[2])


@keras.saving.register_keras_serializable(package="keras_fer")
class CrossAttentionBlock(keras.layers.Layer):
    """``x_cls + DropPath(CrossAttention(LN(x)))`` -> (B, 1, D) (CrossViT Eq. 8, no MLP)."""

    def __init__(self, num_heads, qkv_bias=True, drop=0.0, attn_drop=0.0, drop_path=0.0,
                 epsilon=CROSSVIT_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.qkv_bias = bool(qkv_bias)
        self.drop = check_rate(drop, "drop")
        self.attn_drop = check_rate(attn_drop, "attn_drop")
        self.drop_path = check_rate(drop_path, "drop_path")
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.norm1 = keras.layers.LayerNormalization(epsilon=self.epsilon,
                                                     dtype=self.dtype_policy, name="norm1")
        self.norm1.build(input_shape)
        self.attn = CrossAttention(self.num_heads, qkv_bias=self.qkv_bias,
                                   attn_drop=self.attn_drop, proj_drop=self.drop,
                                   dtype=self.dtype_policy, name="attn")
        self.attn.build(input_shape)
        self.drop_path_layer = DropPath(self.drop_path, dtype=self.dtype_policy)

    def call(self, x, training=None):
        return x[:, :1] + self.drop_path_layer(self.attn(self.norm1(x), training=training),
                                               training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "qkv_bias": self.qkv_bias,
                "drop": self.drop, "attn_drop": self.attn_drop, "drop_path": self.drop_path,
                "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_fer")
class TokenProjection(keras.layers.Layer):
    """``Dense(GELU(LN(x)))`` to ``out_dim``: CrossViT's ``f``/``g`` maps between branch widths
    (timm's ``projs``/``revert_projs`` Sequential of LayerNorm, GELU, Linear)."""

    def __init__(self, out_dim, epsilon=CROSSVIT_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.out_dim = check_positive_int(out_dim, "out_dim")
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.norm = keras.layers.LayerNormalization(epsilon=self.epsilon,
                                                    dtype=self.dtype_policy, name="norm")
        self.norm.build(input_shape)
        self.fc = keras.layers.Dense(self.out_dim, kernel_initializer=trunc_normal(),
                                     dtype=self.dtype_policy, name="fc")
        self.fc.build(input_shape)

    def call(self, x):
        return self.fc(keras.activations.gelu(self.norm(x), approximate=False))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_dim,)

    def get_config(self):
        return {**super().get_config(), "out_dim": self.out_dim, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_fer")
class MultiScaleBlock(keras.layers.Layer):
    """One CrossViT multi-scale encoder over a list of per-branch (B, 1 + N_i, D_i) tokens.

    ``depth = (d_0, d_1, ..., fusion_depth)`` (timm's format): d_i transformer blocks in
    branch i, then for each branch i a cross-attention of its projected class token over the
    next branch's patches (``max(fusion_depth, 1)`` blocks; timm's fusion_depth 0 means one).
    ``drop_path`` is one rate or a list indexed like timm's (block j of every branch uses
    entry j, the fusion the last entry).
    """

    def __init__(self, depth, num_heads, mlp_ratio, qkv_bias=True, drop=0.0, attn_drop=0.0,
                 drop_path=0.0, epsilon=CROSSVIT_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.depth = [int(d) for d in depth]
        self.num_heads = [check_positive_int(h, "num_heads") for h in num_heads]
        self.mlp_ratio = [float(r) for r in mlp_ratio]
        branches = len(self.depth) - 1
        if branches < 2 or len(self.num_heads) != branches or len(self.mlp_ratio) < branches:
            raise ValueError(f"depth must list each branch's depth plus the fusion depth, with "
                             f"num_heads and mlp_ratio per branch; got depth={depth}, "
                             f"num_heads={num_heads}, mlp_ratio={mlp_ratio}")
        self.qkv_bias = bool(qkv_bias)
        self.drop = check_rate(drop, "drop")
        self.attn_drop = check_rate(attn_drop, "attn_drop")
        rates = drop_path if isinstance(drop_path, (list, tuple)) else [drop_path] * (
            max(self.depth[:-1]) + self.depth[-1])
        self.drop_path = [check_rate(r, "drop_path") for r in rates]
        if len(self.drop_path) < max(self.depth[:-1]):
            raise ValueError(f"drop_path needs {max(self.depth[:-1])} rates, got {drop_path}")
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != len(self.num_heads):
            raise ValueError(f"MultiScaleBlock expects a list of {len(self.num_heads)} token "
                             f"tensors (batch, tokens, dim), got {input_shape}")
        dims = [s[-1] for s in input_shape]
        n = len(dims)
        self.branch_blocks = []
        for d in range(n):
            for j in range(self.depth[d]):
                block = TransformerBlock(self.num_heads[d], self.mlp_ratio[d], self.qkv_bias,
                                         self.drop, self.attn_drop, self.drop_path[j],
                                         self.epsilon, dtype=self.dtype_policy,
                                         name=f"blocks_{d}_{j}")
                block.build(input_shape[d])
                self.branch_blocks.append(block)
        self.projs, self.fusion, self.revert_projs = [], [], []
        for d in range(n):
            nxt = (d + 1) % n
            proj = TokenProjection(dims[nxt], self.epsilon, dtype=self.dtype_policy,
                                   name=f"projs_{d}")
            proj.build((None, 1, dims[d]))
            self.projs.append(proj)
            for j in range(max(self.depth[-1], 1)):
                fusion = CrossAttentionBlock(self.num_heads[nxt], self.qkv_bias, self.drop,
                                             self.attn_drop, self.drop_path[-1], self.epsilon,
                                             dtype=self.dtype_policy, name=f"fusion_{d}_{j}")
                fusion.build((None, None, dims[nxt]))
                self.fusion.append(fusion)
            revert = TokenProjection(dims[d], self.epsilon, dtype=self.dtype_policy,
                                     name=f"revert_projs_{d}")
            revert.build((None, 1, dims[nxt]))
            self.revert_projs.append(revert)

    def branch(self, d):
        """The transformer blocks of branch ``d``."""
        start = sum(self.depth[:d])
        return self.branch_blocks[start:start + self.depth[d]]

    def fusions(self, d):
        per = max(self.depth[-1], 1)
        return self.fusion[d * per:(d + 1) * per]

    def call(self, xs, training=None):
        n = len(xs)
        outs = []
        for d, x in enumerate(xs):
            for block in self.branch(d):
                x = block(x, training=training)
            outs.append(x)
        fused = []
        for d in range(n):
            nxt = (d + 1) % n
            tmp = ops.concatenate([self.projs[d](outs[d][:, :1]), outs[nxt][:, 1:]], axis=1)
            for fusion in self.fusions(d):
                tmp = fusion(tmp, training=training)
            fused.append(ops.concatenate([self.revert_projs[d](tmp[:, :1]), outs[d][:, 1:]],
                                         axis=1))
        return fused

    def compute_output_shape(self, input_shape):
        return [tuple(s) for s in input_shape]

    def get_config(self):
        return {**super().get_config(), "depth": self.depth, "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio, "qkv_bias": self.qkv_bias, "drop": self.drop,
                "attn_drop": self.attn_drop, "drop_path": self.drop_path,
                "epsilon": self.epsilon}


def branch_sizes(image_size, img_scale):
    """timm's ``img_size_scaled``: ``int(side * scale)`` per branch."""
    return [tuple(int(side * s) for side in image_size) for s in img_scale]


def crossvit_backbone(input_shape, img_scale=(1.0, 224 / 240), patch_size=(12, 16),
                      embed_dim=(384, 768), depth=((1, 4, 0),) * 3, num_heads=(12, 12),
                      mlp_ratio=(4.0, 4.0), qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                      drop_path_rate=0.0, name=None):
    """Images -> (B, D_0 + D_1) concatenated final-normalised class tokens.

    Per-branch arguments are sequences with one entry per branch; ``depth`` lists the
    multi-scale blocks in timm's format. Layer names follow timm (``patch_embed_0``,
    ``cls_token_0``, ``pos_embed_0``, ``blocks_k``, ``norm_0``...).
    """
    branches = len(patch_size)
    per_branch = dict(img_scale=img_scale, embed_dim=embed_dim, num_heads=num_heads)
    for key, value in per_branch.items():
        if len(value) != branches:
            raise ValueError(f"{key} needs one entry per branch ({branches}, as patch_size "
                             f"{tuple(patch_size)}), got {tuple(value)}")
    if len(mlp_ratio) < branches:
        raise ValueError(f"mlp_ratio needs one entry per branch ({branches}), got {mlp_ratio}")
    depth = [list(d) for d in depth]
    if not depth or any(len(d) != branches + 1 for d in depth):
        raise ValueError(f"depth must be a non-empty list of (branch depths..., fusion depth) "
                         f"with {branches + 1} entries each, got {depth}")
    sizes = branch_sizes(input_shape[:2], img_scale)
    for size, patch in zip(sizes, patch_size):
        if min(size) < patch:
            raise ValueError(f"a branch sees {size} pixels, smaller than its patch size {patch}; "
                             f"use a larger input (e.g. 240x240) or smaller patch_size")
    total = sum(sum(d[-2:]) for d in depth)
    rates = list(np.linspace(0.0, check_rate(drop_path_rate, "drop_path_rate"), total))
    inputs = keras.Input(tuple(input_shape), name="images")
    xs = []
    for i, (size, patch, dim) in enumerate(zip(sizes, patch_size, embed_dim)):
        x = inputs if size == tuple(input_shape[:2]) else ResizeImage(size, name=f"scale_{i}")(
            inputs)
        x = PatchEmbedding(patch, dim, name=f"patch_embed_{i}")(x)
        x = PrependClassToken(name=f"cls_token_{i}")(x)
        x = PositionEmbedding(name=f"pos_embed_{i}")(x)
        xs.append(keras.layers.Dropout(check_rate(drop_rate, "drop_rate"),
                                       name=f"pos_drop_{i}")(x))
    pointer = 0
    for k, cfg in enumerate(depth):
        span = max(cfg[:-1]) + cfg[-1]
        xs = MultiScaleBlock(cfg, num_heads, mlp_ratio[:branches], qkv_bias, drop_rate,
                             attn_drop_rate, [float(r) for r in rates[pointer:pointer + span]],
                             CROSSVIT_EPSILON, name=f"blocks_{k}")(xs)
        pointer += span
    tokens = [ClsToken(name=f"cls_{i}")(
        keras.layers.LayerNormalization(epsilon=CROSSVIT_EPSILON, name=f"norm_{i}")(x))
        for i, x in enumerate(xs)]
    return keras.Model(inputs, keras.layers.Concatenate(name="concat_cls")(tokens), name=name)
