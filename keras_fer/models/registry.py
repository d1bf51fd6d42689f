"""A registry of named architectures in the timm manner.

Each entry is a builder ``fn(num_classes, input_shape, **options) -> keras.Model`` registered
under a name with its defaults carried as data (input shape, normalisation, the timm model it
mirrors), so ``create_model("resnet18", attention="hfc")`` and ``list_architectures("vit*")``
work for every family, ours and the libraries'.
"""

import dataclasses
import fnmatch
from typing import Callable, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    builder: Callable
    family: str
    default_input_shape: Tuple[int, int, int]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    description: str = ""
    timm_name: Optional[str] = None  # the timm model whose weights convert into this one


_REGISTRY = {}

# ImageNet statistics on the [0, 1] scale; grey models use the mean of the three channels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


def register_architecture(name, *, family, default_input_shape, mean=IMAGENET_MEAN,
                          std=IMAGENET_STD, description="", timm_name=None):
    """Decorator: registers ``builder`` under ``name``; a second registration is an error."""

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = ArchitectureSpec(name, builder, family, tuple(default_input_shape),
                                           tuple(mean), tuple(std), description, timm_name)
        return builder

    return decorator


def register_variants(configs, build, *, family, default_input_shape, describe,
                      timm_name, **spec):
    """Registers one architecture per key of ``configs`` (a family's size table), each built by
    ``build(arch, num_classes, input_shape, **options)``; ``describe(arch)`` and
    ``timm_name(arch)`` give the entry's text and timm counterpart. ``spec``: the rest of
    ``register_architecture``'s arguments (mean, std)."""

    def register(arch):
        @register_architecture(arch, family=family, default_input_shape=default_input_shape,
                               description=describe(arch), timm_name=timm_name(arch), **spec)
        def builder(num_classes=7, input_shape=tuple(default_input_shape), **options):
            return build(arch, num_classes, input_shape, **options)

        return builder

    for arch in configs:
        register(arch)


def list_architectures(pattern=None):
    """Sorted names, optionally filtered by a shell pattern such as ``"vit*"``."""
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def get_architecture(name):
    try:
        return _REGISTRY[name]
    except KeyError:
        close = fnmatch.filter(sorted(_REGISTRY), f"*{name.split('_')[0]}*")
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown architecture {name!r}{hint}. "
                         "See keras_fer.models.list_architectures().") from None


def create_model(arch, num_classes=7, input_shape=None, **options):
    """Builds architecture ``arch`` for ``num_classes`` classes.

    ``input_shape`` defaults to the architecture's own (e.g. (48, 48, 1) for the compact CNN,
    (224, 224, 3) for transformers). The returned model takes images with pixel values in
    [0, 255] and returns logits; normalisation is inside the model.

    ``resizer=True`` or ``resizer={...}`` (NeuralResizer arguments) puts a trainable Neural
    Resizer (seed 004) in front: ``input_shape`` is then the small image and the backbone is
    built at the resizer's ``target_size`` (see ``keras_fer.models.resizer_front``).
    """
    from keras_fer.layers.onednn_safe import make_onednn_safe

    spec = get_architecture(arch)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    input_shape = tuple(input_shape or spec.default_input_shape)
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"input_shape must be (height, width, 1 or 3), got {input_shape}")
    resizer = options.pop("resizer", None)
    if resizer not in (None, False):
        from keras_fer.models.resizer_front import with_neural_resizer

        model = with_neural_resizer(arch, num_classes, input_shape, resizer, **options)
    else:
        model = spec.builder(num_classes=num_classes, input_shape=input_shape, **options)
    make_onednn_safe(model)
    return model
