"""ViT and DeiT backbones: keras-hub's ``ViTBackbone`` configured from arguments.

ViT (Dosovitskiy et al. 2021) and DeiT (Touvron et al. 2021) share one architecture: patch
embedding (Eq. 1), class token and learned position embedding, pre-norm encoder blocks
(Eqs. 2-3), final LayerNorm; the classifier reads the class token (Eq. 4). DeiT differs only in
its training recipe and ImageNet normalisation, so both are keras-hub ``ViTBackbone`` built
with random weights (no preset is downloaded). The distilled DeiT variant (an extra
distillation token, keras-hub ``DeiTBackbone``) is not registered: the seed papers do not use
it.

Grey input: the patch embedding takes as many channels as the image has. A 48x48x1 model has a
one-channel patch convolution; RGB checkpoints load into it summed over the colour axis (as
timm's ``in_chans=1``; see ``keras_fer.models.transformer_blocks``).
"""

import keras_hub

from keras_fer.models.transformer_blocks import check_positive_int, check_rate

# The size table: each architecture's defaults for ``vit_backbone``'s size arguments (timm's
# model of the same name with an ``_224`` suffix).
CONFIGS = {
    "vit_tiny_patch16": dict(embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16": dict(embed_dim=768, depth=12, num_heads=12),
    "deit_tiny_patch16": dict(embed_dim=192, depth=12, num_heads=3),
    "deit_small_patch16": dict(embed_dim=384, depth=12, num_heads=6),
}


def vit_backbone(input_shape, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                 mlp_ratio=4.0, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0, name=None):
    """A randomly initialised keras-hub ``ViTBackbone``: images -> (B, 1 + N, D) tokens after
    the final LayerNorm (token 0 is the class token).

    Arguments carry timm's names (``embed_dim``, ``depth``, ``mlp_ratio``...) so a timm
    configuration reads across; ``drop_rate`` is keras-hub's single dropout rate (embeddings,
    attention output and MLP). keras-hub has no stochastic depth for ViT, so there is no
    ``drop_path_rate``.
    """
    patch_size = check_positive_int(patch_size, "patch_size")
    embed_dim = check_positive_int(embed_dim, "embed_dim")
    num_heads = check_positive_int(num_heads, "num_heads")
    depth = check_positive_int(depth, "depth")
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
    if float(mlp_ratio) <= 0:
        raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio}")
    h, w = input_shape[0], input_shape[1]
    if h % patch_size or w % patch_size:
        raise ValueError(f"input height and width {(h, w)} must be multiples of patch_size "
                         f"({patch_size})")
    return keras_hub.models.ViTBackbone(
        image_shape=tuple(input_shape), patch_size=patch_size, num_layers=depth,
        num_heads=num_heads, hidden_dim=embed_dim, mlp_dim=int(embed_dim * mlp_ratio),
        dropout_rate=check_rate(drop_rate, "drop_rate"),
        attention_dropout=check_rate(attn_drop_rate, "attn_drop_rate"),
        layer_norm_epsilon=1e-6, use_mha_bias=bool(qkv_bias), name=name)
