"""Model families (keras_fer.models): one door, ``create_model(arch, ...)``.

Every family package has the same layout: ``backbone.py`` (the backbone and its size table
``CONFIGS``), ``model.py`` (the classifier builder and one ``register_family`` call),
``convert.py`` (timm or other checkpoints) and an ``__init__.py`` that only re-exports.
"""

from keras_fer.models.classifier import ClsToken, FERClassifier
from keras_fer.models.ensemble import EnsembleClassifier, flip_tta
from keras_fer.models.registry import (
    ArchitectureSpec,
    create_model,
    get_architecture,
    list_architectures,
    register_architecture,
    register_family,
)

# Importing a family module registers its architectures.
import keras_fer.models.library_cnns  # noqa: E402,F401  (keras-hub / keras.applications CNNs)
import keras_fer.models.resnet  # noqa: E402,F401  (our ResNet18/34 with the attention hook)
import keras_fer.models.mobilenet_v2  # noqa: E402,F401  (our MobileNetV2 with the hook)
import keras_fer.models.mini_xception  # noqa: E402,F401  (the fer package's compact CNN)
import keras_fer.models.vit  # noqa: E402,F401  (keras-hub ViT / DeiT)
import keras_fer.models.swin  # noqa: E402,F401  (Swin Transformer, timm-exact, any input size)
import keras_fer.models.convit  # noqa: E402,F401  (ConViT, gated positional self-attention)
import keras_fer.models.crossvit  # noqa: E402,F401  (CrossViT, two-branch cross-attention)
import keras_fer.models.hybrid_vit  # noqa: E402,F401  (ResNet-V2 stem + ViT)


def load_model(path, compile=False):
    """A ``.keras`` file saved from any keras-fer model, loaded with Keras' ``safe_mode``
    (no arbitrary code runs). Plain ``keras.saving.load_model`` fails on these files unless
    keras-fer's custom classes were imported first; this makes sure they are."""
    import keras

    import keras_fer.layers  # (registers the custom layers a file may use)

    model = keras.saving.load_model(path, safe_mode=True, compile=compile)
    # Files saved before the oneDNN workaround hold stock strided 1x1 convolutions.
    keras_fer.layers.make_onednn_safe(model)
    return model
