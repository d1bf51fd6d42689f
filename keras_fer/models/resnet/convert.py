"""timm ``resnet18``/``resnet34`` checkpoints -> keras-fer ResNets (no torch needed)."""

from keras_fer.models import cnn_common, timm_convert
from keras_fer.models.resnet.backbone import SMALL_STEM


def load_timm_weights(model, weights, load_head="auto"):
    """Copies a timm ResNet checkpoint (safetensors path, ``save_for_hf`` folder or mapping of
    arrays) into ``model`` (a keras-fer ResNet classifier or backbone).

    Inserted attention modules keep their initial weights (timm has none). A grey-input model
    gets the stem conv summed over RGB. With ``small_input=True`` the 3x3 stem cannot take the
    7x7 ImageNet stem and keeps its initial weights (a warning says so). ``load_head``: see
    ``timm_convert.copy_classifier_head`` (default: the ``fc`` head is copied only when it has
    as many classes as the model). Returns whether the head was loaded.
    """
    backbone = getattr(model, "backbone", model)
    small = any(layer.name == SMALL_STEM[0] for layer in backbone.layers)
    skip = set(SMALL_STEM) if small else set()
    head = timm_convert.load_named_checkpoint(
        model, weights, head_prefix="fc", input_convs=("conv1",),
        skip=lambda name: name in skip or cnn_common.is_attention_layer(name),
        ignore_prefixes=("conv1.", "bn1.") if small else (), load_head=load_head)
    if small:
        timm_convert.warn_skipped("the small-input 3x3 stem (stem_conv3x3, stem_bn) keeps its "
                                  "initial weights: the checkpoint's 7x7 stem does not fit it",
                                  weights)
    return head
