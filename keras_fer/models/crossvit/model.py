"""CrossViT classifiers: the builder and the registration (sizes: ``backbone.CONFIGS``)."""

from keras_fer.models.crossvit.backbone import CONFIGS, crossvit_backbone
from keras_fer.models.crossvit.convert import load_timm_weights
from keras_fer.models.registry import register_family
from keras_fer.models.transformer_blocks import classifier_builder

build_crossvit = classifier_builder(crossvit_backbone, None, load_timm_weights)


register_family(
    CONFIGS, build_crossvit, family="crossvit", default_input_shape=(240, 240, 3),
    timm_name=lambda arch: f"{arch}_240",
    description="CrossViT, branches {embed_dim[0]}-d (12px patches) and {embed_dim[1]}-d "
                "(16px patches at 224/240 scale), 3 multi-scale blocks (timm '{timm_name}' "
                "weights convert). Options: img_scale, patch_size, embed_dim, depth, "
                "num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate, "
                "dropout, weights, load_head.",
    test_options=dict(input_shape=(48, 48, 1), embed_dim=(8, 16), depth=((1, 1, 0),),
                      num_heads=(2, 2), mlp_ratio=(2, 2)),
    test_slow=lambda arch: arch != "crossvit_tiny")
