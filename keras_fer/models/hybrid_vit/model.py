"""Hybrid ViT classifiers: the builder and the registration (sizes: ``backbone.CONFIGS``)."""

from keras_fer.models.hybrid_vit.backbone import CONFIGS, hybrid_vit_backbone
from keras_fer.models.hybrid_vit.convert import load_timm_weights
from keras_fer.models.registry import HALF, register_family
from keras_fer.models.transformer_blocks import classifier_builder

build_hybrid_vit = classifier_builder(hybrid_vit_backbone, "cls", load_timm_weights)


register_family(
    CONFIGS, build_hybrid_vit, family="hybrid_vit", default_input_shape=(224, 224, 3),
    mean=HALF, std=HALF, timm_name=lambda arch: f"{arch}_224",
    description="Hybrid ViT: ResNet-V2 stem {layers} + {embed_dim}-d ViT, {depth} blocks, "
                "{num_heads} heads (timm '{timm_name}' weights convert; seed 001's "
                "vit_base_resnet50 is vit_base_r50_s16). Options: layers, embed_dim, depth, "
                "num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate, "
                "dropout, weights, load_head.",
    test_options=dict(input_shape=(48, 48, 1), layers=(1,), embed_dim=16, depth=1,
                      num_heads=2),
    test_slow=lambda arch: arch != "vit_small_r26_s32")
