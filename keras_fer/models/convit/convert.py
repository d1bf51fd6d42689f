"""timm ConViT checkpoints -> keras-fer ConViT (no torch needed). A checkpoint for another
patch grid gets its position embedding resampled (timm's bicubic, antialiased); the GPSA
positional weights do not depend on the grid."""

from keras_fer.models import timm_convert as tc
from keras_fer.models.convit.backbone import GPSABlock


def copy_convit_backbone(backbone, sd):
    """Fills a keras-fer ConViT backbone from timm ``ConVit`` tensors."""
    embed = backbone.get_layer("patch_embed")
    tc.copy_conv2d(embed.proj, sd, "patch_embed.proj", adapt_input=True)
    pos = backbone.get_layer("pos_embed")
    tc.copy_variable(pos.pos_embed, sd, "pos_embed", pos.name,
                     lambda v: tc.fit_position_embedding(v, embed.grid_size, num_prefix_tokens=0))
    cls = backbone.get_layer("cls_token")
    tc.copy_variable(cls.cls_token, sd, "cls_token", cls.name)
    for layer in backbone.layers:
        if not layer.name.startswith("blocks_"):
            continue
        prefix = layer.name.replace("_", ".")
        if isinstance(layer, GPSABlock):
            attn = layer.attn
            tc.copy_layer_norm(layer.norm1, sd, f"{prefix}.norm1")
            for dense in (attn.qk, attn.v, attn.proj, attn.pos_proj):
                tc.copy_dense(dense, sd, f"{prefix}.attn.{dense.name}")
            tc.copy_variable(attn.gating_param, sd, f"{prefix}.attn.gating_param", layer.name)
            tc.copy_layer_norm(layer.norm2, sd, f"{prefix}.norm2")
            tc.copy_dense(layer.mlp.fc1, sd, f"{prefix}.mlp.fc1")
            tc.copy_dense(layer.mlp.fc2, sd, f"{prefix}.mlp.fc2")
        else:
            tc.copy_transformer_block(layer, sd, prefix)
    tc.copy_layer_norm(backbone.get_layer("norm"), sd, "norm")


def load_timm_weights(model, weights, load_head="auto"):
    """Copies a timm ConViT checkpoint (safetensors file, ``save_for_hf`` folder or mapping of
    arrays) into ``model`` (a keras-fer ConViT classifier or backbone). All or nothing.
    Returns whether the head was loaded."""
    return tc.load_checkpoint(model, weights, copy_convit_backbone, head_prefix="head",
                              load_head=load_head)
