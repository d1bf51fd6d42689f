"""timm Swin Transformer checkpoints -> keras-fer Swin (no torch needed).

Layer names are timm's paths with "_" for "."; each block's relative position table is copied
as is when the window matches. When a block's window was clamped to a smaller feature map
(a 48x48 face: windows 7, 6, 3, 2 where ImageNet weights were trained with 7), the central
(2w - 1)^2 part of the checkpoint's (2W - 1)^2 table is taken: those entries are exactly the
biases the pretrained model applies to the relative offsets a w-window can contain. (timm
instead interpolates the table, which rescales offsets; cropping keeps each offset's bias.)
"""

import numpy as np

from keras_fer.models import timm_convert as tc
from keras_fer.models.swin.backbone import PatchMerging, SwinBlock


def crop_relative_table(table, window):
    """A ((2W - 1)^2, heads) table of a square W window -> its centre for ``window``."""
    side = int(round(table.shape[0] ** 0.5))
    if side * side != table.shape[0]:
        return table  # not square: the shape check reports it
    old = (side + 1) // 2
    wh, ww = window
    if wh > old or ww > old:
        return table  # a larger window cannot be cut from a smaller table
    grid = np.asarray(table).reshape(side, side, -1)
    grid = grid[old - wh:old + wh - 1, old - ww:old + ww - 1]
    return grid.reshape(-1, table.shape[-1])


def copy_swin_backbone(backbone, sd):
    """Fills a keras-fer Swin backbone from timm ``SwinTransformer`` tensors."""
    tc.copy_conv2d(backbone.get_layer("patch_embed").proj, sd, "patch_embed.proj",
                   adapt_input=True)
    tc.copy_layer_norm(backbone.get_layer("patch_embed_norm"), sd, "patch_embed.norm")
    for layer in backbone.layers:
        prefix = layer.name.replace("_", ".")
        if isinstance(layer, PatchMerging):
            tc.copy_layer_norm(layer.norm, sd, f"{prefix}.norm")
            tc.copy_dense(layer.reduction, sd, f"{prefix}.reduction")
        elif isinstance(layer, SwinBlock):
            tc.copy_layer_norm(layer.norm1, sd, f"{prefix}.norm1")
            tc.copy_dense(layer.attn.qkv, sd, f"{prefix}.attn.qkv")
            tc.copy_dense(layer.attn.proj, sd, f"{prefix}.attn.proj")
            tc.copy_variable(layer.attn.relative_position_bias_table, sd,
                             f"{prefix}.attn.relative_position_bias_table", layer.name,
                             lambda t, w=layer.window: crop_relative_table(t, w))
            tc.copy_layer_norm(layer.norm2, sd, f"{prefix}.norm2")
            tc.copy_dense(layer.mlp.fc1, sd, f"{prefix}.mlp.fc1")
            tc.copy_dense(layer.mlp.fc2, sd, f"{prefix}.mlp.fc2")
    tc.copy_layer_norm(backbone.get_layer("norm"), sd, "norm")
    # Buffers older checkpoints saved; Keras recomputes them from the window size.
    sd.used.update(k for k in sd if k.endswith(("relative_position_index", "attn_mask")))


def load_timm_weights(model, weights, load_head="auto"):
    """Copies a timm Swin checkpoint (safetensors file, ``save_for_hf`` folder or mapping of
    arrays) into ``model`` (a keras-fer Swin classifier or backbone); the head is timm's
    ``head.fc``. All or nothing. Returns whether the head was loaded."""
    return tc.load_checkpoint(model, weights, copy_swin_backbone, head_prefix="head.fc",
                              load_head=load_head)
