"""Swin classifiers: the builder and the registration (sizes: ``backbone.CONFIGS``)."""

from keras_fer.models.registry import register_family
from keras_fer.models.swin.backbone import CONFIGS, swin_backbone
from keras_fer.models.swin.convert import load_timm_weights
from keras_fer.models.transformer_blocks import classifier_builder

build_swin = classifier_builder(swin_backbone, "avg", load_timm_weights)


register_family(
    CONFIGS, build_swin, family="swin", default_input_shape=(224, 224, 3),
    timm_name=lambda arch: f"{arch}_224",
    description="Swin Transformer, {embed_dim}-d, depths {depths}, window {window_size} (timm "
                "'{timm_name}' weights convert; any input size, e.g. 48x48x1). Options: "
                "patch_size, embed_dim, depths, num_heads, window_size, mlp_ratio, qkv_bias, "
                "drop_rate, attn_drop_rate, drop_path_rate, dropout, weights, load_head.",
    test_options=dict(input_shape=(48, 48, 1), embed_dim=8, depths=(2, 1), num_heads=(1, 2),
                      window_size=4, drop_path_rate=0.0),
    test_slow=lambda arch: arch != "swin_tiny_patch4_window7")
