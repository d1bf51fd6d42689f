"""ViT and DeiT classifiers: the builder and the registration (sizes: ``backbone.CONFIGS``)."""

from keras_fer.models.registry import HALF, register_family
from keras_fer.models.transformer_blocks import classifier_builder
from keras_fer.models.vit.backbone import CONFIGS, vit_backbone
from keras_fer.models.vit.convert import load_timm_weights


build_vit = classifier_builder(vit_backbone, "cls", load_timm_weights)


_DOC = ("%s {embed_dim}-d, {depth} blocks, {num_heads} heads, 16x16 patches (keras-hub "
        "ViTBackbone; timm '{timm_name}' weights convert). Options: patch_size, embed_dim, "
        "depth, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, dropout, weights, "
        "load_head.")
# One tiny model stands for the family in the quick tests (the sizes are all overridden).
_SHARED = dict(default_input_shape=(224, 224, 3), timm_name=lambda arch: f"{arch}_224",
               test_options=dict(input_shape=(48, 48, 1), patch_size=16, embed_dim=16, depth=1,
                                 num_heads=2),
               test_slow=lambda arch: arch != "vit_tiny_patch16")

register_family({arch: CONFIGS[arch] for arch in CONFIGS if arch.startswith("vit_")},
                build_vit, family="vit", description=_DOC % "ViT", mean=HALF, std=HALF,
                **_SHARED)
register_family({arch: CONFIGS[arch] for arch in CONFIGS if arch.startswith("deit_")},
                build_vit, family="deit", description=_DOC % "DeiT", **_SHARED)
