"""timm CrossViT checkpoints -> keras-fer CrossViT (no torch needed).

timm's two heads (``head.0``, ``head.1``) become the classifier's single Dense over the
concatenated class tokens: kernel = both heads' kernels stacked and divided by the number of
branches, bias = their mean, which equals timm's average of the two heads' logits.
"""

import numpy as np

from keras_fer.models import timm_convert as tc
from keras_fer.models.crossvit.backbone import MultiScaleBlock


def _token_key(sd, name, index):
    """``cls_token_0`` in timm >= 0.5 checkpoints, ``cls_token.0`` in older ones."""
    new = f"{name}_{index}"
    return new if new in sd or f"{name}.{index}" not in sd else f"{name}.{index}"


def _copy_token_projection(layer, sd, prefix):
    tc.copy_layer_norm(layer.norm, sd, f"{prefix}.0")
    tc.copy_dense(layer.fc, sd, f"{prefix}.2")


def _copy_multiscale_block(block, sd, prefix):
    branches = len(block.num_heads)
    timm_index = 0  # timm only keeps a Sequential for branches with blocks
    for d in range(branches):
        if block.depth[d]:
            for j, layer in enumerate(block.branch(d)):
                tc.copy_transformer_block(layer, sd, f"{prefix}.blocks.{timm_index}.{j}")
            timm_index += 1
        _copy_token_projection(block.projs[d], sd, f"{prefix}.projs.{d}")
        _copy_token_projection(block.revert_projs[d], sd, f"{prefix}.revert_projs.{d}")
        for j, fusion in enumerate(block.fusions(d)):
            # fusion depth 0 (timm's default) is one bare block, not a Sequential
            path = f"{prefix}.fusion.{d}" + (f".{j}" if block.depth[-1] else "")
            tc.copy_layer_norm(fusion.norm1, sd, f"{path}.norm1")
            for dense in (fusion.attn.wq, fusion.attn.wk, fusion.attn.wv, fusion.attn.proj):
                tc.copy_dense(dense, sd, f"{path}.attn.{dense.name}")


def copy_crossvit_backbone(backbone, sd):
    """Fills a keras-fer CrossViT backbone from timm ``CrossVit`` tensors."""
    i = 0
    while any(layer.name == f"patch_embed_{i}" for layer in backbone.layers):
        embed = backbone.get_layer(f"patch_embed_{i}")
        tc.copy_conv2d(embed.proj, sd, f"patch_embed.{i}.proj", adapt_input=True)
        cls = backbone.get_layer(f"cls_token_{i}")
        tc.copy_variable(cls.cls_token, sd, _token_key(sd, "cls_token", i), cls.name)
        pos = backbone.get_layer(f"pos_embed_{i}")
        tc.copy_variable(pos.pos_embed, sd, _token_key(sd, "pos_embed", i), pos.name,
                         lambda v, grid=embed.grid_size: tc.fit_position_embedding(v, grid))
        tc.copy_layer_norm(backbone.get_layer(f"norm_{i}"), sd, f"norm.{i}")
        i += 1
    for layer in backbone.layers:
        if isinstance(layer, MultiScaleBlock):
            _copy_multiscale_block(layer, sd, layer.name.replace("_", "."))


def copy_crossvit_head(dense, sd, mode="auto"):
    """The classifier Dense <- the average of timm's per-branch heads (see module doc)."""
    if mode not in ("auto", True, False):
        raise ValueError(f"load_head must be 'auto', True or False, got {mode!r}")
    if mode is False:
        return False
    names = sorted(k for k in sd if k.startswith("head.") and k.endswith(".weight"))
    if not names:
        if mode is True:
            raise ValueError(f"{sd.source}: no classifier head tensors 'head.<i>.weight'")
        return False
    kernel = np.concatenate([sd[n].T for n in names], axis=0) / len(names)
    if mode == "auto" and kernel.shape != tuple(dense.kernel.shape):
        return False
    tc.copy_variable(dense.kernel, sd, names[0], dense.name, lambda _: kernel)
    bias = np.mean([sd.take(n.replace(".weight", ".bias"), dense.name) for n in names], axis=0)
    sd.used.update(names)
    tc.copy_variable(dense.bias, sd, names[0].replace(".weight", ".bias"), dense.name,
                     lambda _: bias)
    return True


def load_timm_weights(model, weights, load_head="auto"):
    """Copies a timm CrossViT checkpoint (safetensors file, ``save_for_hf`` folder or mapping
    of arrays) into ``model`` (a keras-fer CrossViT classifier or backbone). All or nothing.
    Returns whether the head was loaded."""
    loaded = []

    def copy(backbone, sd):
        copy_crossvit_backbone(backbone, sd)
        if backbone is not model:
            loaded.append(copy_crossvit_head(model.get_layer("predictions"), sd, load_head))

    tc.load_checkpoint(model, weights, copy, head_prefix="head", load_head=False)
    return bool(loaded and loaded[0])
