"""timm ``mobilenetv2_*`` checkpoints -> keras-fer MobileNetV2 (no torch needed)."""

from keras_fer.models import cnn_common, timm_convert


def load_timm_weights(model, weights, load_head="auto"):
    """Copies a timm MobileNetV2 checkpoint (safetensors path, ``save_for_hf`` folder or
    mapping of arrays) of the same width into ``model`` (a keras-fer MobileNetV2 classifier or
    backbone). Attention modules keep their initial weights; a grey-input model gets the stem
    conv summed over RGB; the ``classifier`` head is copied per ``load_head`` (default: only
    when it has as many classes). Returns whether the head was loaded."""
    return timm_convert.load_named_checkpoint(
        model, weights, head_prefix="classifier", input_convs=("conv_stem",),
        skip=cnn_common.is_attention_layer, load_head=load_head)
