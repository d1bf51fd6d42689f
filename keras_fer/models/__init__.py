"""Model families (keras_fer.models): one door, ``create_model(arch, ...)``."""

from keras_fer.models.classifier import ClsToken, FERClassifier
from keras_fer.models.registry import (
    ArchitectureSpec,
    create_model,
    get_architecture,
    list_architectures,
    register_architecture,
)

# Importing a family module registers its architectures.
