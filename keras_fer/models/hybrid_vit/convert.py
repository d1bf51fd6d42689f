"""timm hybrid ViT checkpoints (``vit_*_r50_s16``, ``vit_*_r26_s32``) -> keras-fer hybrid ViT.

Stem layers are named after timm's paths under ``patch_embed.backbone`` ("_" for "."), so they
copy by name; the transformer part copies like every keras-fer transformer block.
"""

import keras

from keras_fer.models import timm_convert as tc
from keras_fer.models.hybrid_vit.backbone import StdConv2D
from keras_fer.models.transformer_blocks import TransformerBlock

STEM = "patch_embed.backbone"


def _stem_path(name):
    """Keras stem layer name -> timm module path (``stages_0_blocks_1_conv2`` ->
    ``stages.0.blocks.1.conv2``, ``stem_conv`` -> ``stem.conv``)."""
    return f"{STEM}." + name.replace("_", ".")


def copy_hybrid_backbone(backbone, sd):
    """Fills a keras-fer hybrid ViT backbone from timm ``VisionTransformer`` + ``HybridEmbed``
    tensors."""
    for layer in backbone.layers:
        if isinstance(layer, StdConv2D):
            tc.copy_conv2d(layer, sd, _stem_path(layer.name), adapt_input=layer.name == "stem_conv")
        elif isinstance(layer, keras.layers.GroupNormalization):
            tc.copy_group_norm(layer, sd, _stem_path(layer.name))
        elif isinstance(layer, TransformerBlock):
            tc.copy_transformer_block(layer, sd, layer.name.replace("_", "."))
    embed = backbone.get_layer("patch_embed")
    tc.copy_conv2d(embed.proj, sd, "patch_embed.proj")
    cls = backbone.get_layer("cls_token")
    tc.copy_variable(cls.cls_token, sd, "cls_token", cls.name)
    pos = backbone.get_layer("pos_embed")
    tc.copy_variable(pos.pos_embed, sd, "pos_embed", pos.name,
                     lambda v: tc.fit_position_embedding(v, embed.grid_size))
    tc.copy_layer_norm(backbone.get_layer("norm"), sd, "norm")


def load_timm_weights(model, weights, load_head="auto"):
    """Copies a timm hybrid ViT checkpoint (safetensors file, ``save_for_hf`` folder or mapping
    of arrays) into ``model`` (a keras-fer hybrid classifier or backbone). All or nothing.
    Returns whether the head was loaded."""
    return tc.load_checkpoint(model, weights, copy_hybrid_backbone, head_prefix="head",
                              load_head=load_head)
