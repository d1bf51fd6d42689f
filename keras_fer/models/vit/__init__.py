"""ViT (vit_*_patch16) and DeiT (deit_*_patch16) classifiers on keras-hub's ViTBackbone."""

from keras_fer.models.registry import HALF, IMAGENET_MEAN, IMAGENET_STD, register_architecture
from keras_fer.models.transformer_blocks import transformer_classifier
from keras_fer.models.vit.backbone import VIT_CONFIGS, vit_backbone
from keras_fer.models.vit.convert import copy_vit_backbone, load_timm_weights


def build_vit(arch, num_classes, input_shape, patch_size=16, embed_dim=None, depth=None,
              num_heads=None, mlp_ratio=4.0, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
              dropout=0.0, weights=None, load_head="auto"):
    """A ViT/DeiT ``FERClassifier`` reading the class token. ``embed_dim``/``depth``/
    ``num_heads`` default to the named size; ``weights``: a timm checkpoint (safetensors)."""
    dim0, depth0, heads0, _ = VIT_CONFIGS[arch]
    options = dict(patch_size=patch_size,
                   embed_dim=dim0 if embed_dim is None else embed_dim,
                   depth=depth0 if depth is None else depth,
                   num_heads=heads0 if num_heads is None else num_heads,
                   mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                   attn_drop_rate=attn_drop_rate)
    backbone = vit_backbone(input_shape, name=f"{arch}_backbone", **options)
    return transformer_classifier(backbone, arch, num_classes, input_shape, options, "cls",
                                  dropout, weights, load_head, load_timm_weights)


def _register(arch):
    dim, depth, heads, timm_name = VIT_CONFIGS[arch]
    family = arch.split("_")[0]
    mean, std = (HALF, HALF) if family == "vit" else (IMAGENET_MEAN, IMAGENET_STD)
    description = (f"{family.upper() if family == 'vit' else 'DeiT'} {dim}-d, {depth} blocks, "
                   f"{heads} heads, 16x16 patches (keras-hub ViTBackbone; timm '{timm_name}' "
                   "weights convert). Options: patch_size, embed_dim, depth, num_heads, "
                   "mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, dropout, weights, load_head.")

    @register_architecture(arch, family=family, default_input_shape=(224, 224, 3), mean=mean,
                           std=std, description=description, timm_name=timm_name)
    def builder(num_classes=7, input_shape=(224, 224, 3), **options):
        return build_vit(arch, num_classes, input_shape, **options)

    return builder


for _arch in VIT_CONFIGS:
    _register(_arch)

__all__ = ["VIT_CONFIGS", "build_vit", "copy_vit_backbone", "load_timm_weights", "vit_backbone"]
