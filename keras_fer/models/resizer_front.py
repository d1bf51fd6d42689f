"""A Neural Resizer in front of any registered architecture (seed 004, Fig. 1 (b)/(c)).

``create_model(arch, input_shape=(48, 48, 1), resizer={...})`` builds a model that takes the
small image, resizes it with a trainable ``keras_fer.layers.NeuralResizer`` to the backbone's
input size and classifies it; resizer and backbone train jointly, as one model. The registry
hands :func:`add_neural_resizer` a function that builds the architecture at a given size, so
this module needs nothing from the registry (imports run one way: registry -> here).

Layout: the result is an ordinary ``FERClassifier`` whose backbone is
``NeuralResizer -> arch's backbone``:

    image (48x48) -> normalise (arch's mean/std) -> NeuralResizer -> backbone (224x224)
                  -> pooling -> dropout -> logits

Why the resizer sits after the normalisation: the learnt resizer of Talebi & Milanfar (and
seed 004) works on network-normalised images, so its residual branch starts at the scale of
the backbone's input instead of learning 0-255 pixel offsets; normalisation is per-channel
affine, so it commutes with the deterministic resize on the skip path. Everything else of
the architecture's own classifier (pooling, dropout, class names, and any ``weights=`` loaded
into its backbone) is kept; only the freshly initialised head is rebuilt.

The backbone is built for the resizer's output: ``target_size`` defaults to the
architecture's default input size (224x224 for the ViTs, 299x299 for InceptionV3), with the
channels the resizer produces (those of the input, unless a custom ``super_resolution`` layer
changes them). Seed 004 up-scales 48x48 FERPlus images to 384x384 before down-sizing to 224:
``resizer={"sr_scale": 8}``.

The model's ``arch`` stays the backbone's name and ``arch_options`` gain ``"resizer"`` (the
resizer's arguments), so ``create_model(model.arch, input_shape=model.image_shape,
**model.arch_options)`` rebuilds the same model.
"""

import keras

from keras_fer.models.classifier import FERClassifier


def resizer_arguments(resizer):
    """``resizer`` as NeuralResizer keyword arguments: True -> defaults, a dict -> a copy."""
    if resizer is True:
        return {}
    if not isinstance(resizer, dict):
        raise ValueError("resizer must be True or a dict of NeuralResizer arguments (e.g. "
                         f"{{'target_size': (224, 224), 'sr_scale': 8}}), got {resizer!r}")
    return dict(resizer)


def add_neural_resizer(build, num_classes, input_shape, resizer, default_target_size):
    """An architecture behind a trainable Neural Resizer (see the module docstring).

    Args:
        build: ``fn(input_shape) -> FERClassifier``, the architecture (its own options bound)
            built for the resizer's output.
        num_classes: number of classes.
        input_shape: the small input image, ``(height, width, channels)``.
        resizer: True or a dict of ``keras_fer.layers.NeuralResizer`` arguments.
        default_target_size: ``target_size`` when ``resizer`` gives none (the architecture's
            default input size).
    """
    from keras_fer.layers.resizer import NeuralResizer

    kwargs = resizer_arguments(resizer)
    kwargs["target_size"] = tuple(kwargs.get("target_size") or default_target_size)
    input_shape = tuple(input_shape)

    images = keras.Input(input_shape, name="small_images")
    kwargs.setdefault("name", "neural_resizer")
    layer = NeuralResizer(**kwargs)
    resized = layer(images)
    inner = build(tuple(resized.shape[1:]))
    backbone = keras.Model(images, inner.backbone(resized), name=f"resizer_{inner.backbone.name}")

    # The record of how to rebuild it: the layer's own (validated, JSON-ready) arguments.
    config = layer.get_config()
    record = {key: config[key] for key in kwargs}
    record["target_size"] = list(layer.target_size)
    return FERClassifier(
        backbone, num_classes, input_shape, mean=inner.mean, std=inner.std,
        pooling=inner.pooling, dropout=inner.dropout, class_names=inner.class_names,
        arch=inner.arch, arch_options=dict(inner.arch_options, resizer=record))
