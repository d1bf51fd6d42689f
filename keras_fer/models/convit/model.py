"""ConViT classifiers: the builder and the registration (sizes: ``backbone.CONFIGS``)."""

from keras_fer.models.convit.backbone import CONFIGS, convit_backbone
from keras_fer.models.convit.convert import load_timm_weights
from keras_fer.models.registry import register_family
from keras_fer.models.transformer_blocks import classifier_builder

build_convit = classifier_builder(convit_backbone, "cls", load_timm_weights)


register_family(
    CONFIGS, build_convit, family="convit", default_input_shape=(224, 224, 3),
    timm_name=lambda arch: arch,
    description="ConViT {embed_dim}-d, {num_heads} heads, 12 blocks of which 10 gated "
                "positional (timm '{timm_name}' weights convert). Options: patch_size, "
                "embed_dim (total width), depth, num_heads, local_up_to_layer, "
                "locality_strength, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, "
                "drop_path_rate, dropout, weights, load_head.",
    test_options=dict(input_shape=(48, 48, 1), embed_dim=16, depth=2, num_heads=4,
                      local_up_to_layer=1),
    test_slow=lambda arch: arch != "convit_tiny")
