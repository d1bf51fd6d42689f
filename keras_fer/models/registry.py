"""A registry of named architectures in the timm manner.

Each entry is a builder ``fn(num_classes, input_shape, **options) -> keras.Model`` registered
under a name with its defaults carried as data (input shape, normalisation, the timm model it
mirrors, the small settings tests build it with), so ``create_model("resnet18",
attention="hfc")`` and ``list_architectures("vit*")`` work for every family, ours and the
libraries'.

Every family registers the same way (:func:`register_family`): its ``model.py`` holds a
``build(arch, num_classes, input_shape, **options)`` function and hands the registry the
family's size table ``CONFIGS = {arch: {option: value}}``; ``create_model(arch, **overrides)``
builds ``{**CONFIGS[arch], **overrides}``.
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
    # ``create_model`` keywords (``input_shape`` included) for a tiny, quick model: what the
    # tests build (tests/test_models_registry.py); ``test_slow``: its full check is slow.
    test_options: dict = dataclasses.field(default_factory=dict, compare=False)
    test_slow: bool = False


_REGISTRY = {}

# ImageNet statistics on the [0, 1] scale; grey models use the mean of the three channels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


def register_architecture(name, *, family, default_input_shape, mean=IMAGENET_MEAN,
                          std=IMAGENET_STD, description="", timm_name=None, test_options=None,
                          test_slow=False):
    """Decorator: registers ``builder`` under ``name``; a second registration is an error.
    (Families use :func:`register_family`; this is for one-off models, e.g. in tests.)"""

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = ArchitectureSpec(
            name, builder, family, tuple(default_input_shape), tuple(mean), tuple(std),
            description, timm_name, dict(test_options or {}), bool(test_slow))
        return builder

    return decorator


def merge_options(config, overrides):
    """``{**config, **overrides}``, except that an override of None keeps the size table's
    value (``embed_dim=None`` has always meant "the named model's")."""
    return {**config, **{key: value for key, value in overrides.items()
                         if value is not None or key not in config}}


def register_family(configs, build, *, family, default_input_shape, description,
                    mean=IMAGENET_MEAN, std=IMAGENET_STD, timm_name=None, test_options=None,
                    test_slow=False):
    """Registers one architecture per key of ``configs`` (the family's size table
    ``{arch: {option: value}}``), built by ``build(arch, num_classes, input_shape, **options)``
    with ``options = {**configs[arch], **overrides}`` (:func:`merge_options`).

    ``description`` is a template formatted with ``arch``, ``timm_name`` and the entry's
    sizes. ``family``, ``default_input_shape``, ``mean``, ``std``, ``timm_name``,
    ``test_options`` and ``test_slow`` are shared by the family's architectures, or are
    functions of ``arch`` giving each its own.
    """

    def per_arch(value, arch):
        return value(arch) if callable(value) else value

    def register(arch):
        config = dict(configs[arch])
        timm = per_arch(timm_name, arch)
        shape = tuple(per_arch(default_input_shape, arch))
        text = per_arch(description, arch).format(arch=arch, timm_name=timm, **config)

        @register_architecture(arch, family=per_arch(family, arch), default_input_shape=shape,
                               mean=per_arch(mean, arch), std=per_arch(std, arch),
                               description=text, timm_name=timm,
                               test_options=per_arch(test_options, arch),
                               test_slow=per_arch(test_slow, arch))
        def builder(num_classes=7, input_shape=shape, **overrides):
            return build(arch, num_classes, input_shape, **merge_options(config, overrides))

        builder.__name__ = builder.__qualname__ = arch
        builder.__doc__ = text

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
    input_shape = _checked_shape(spec, num_classes, input_shape)
    resizer = options.pop("resizer", None)
    if resizer not in (None, False):
        from keras_fer.models.resizer_front import add_neural_resizer

        def build(shape):  # the backbone, at the resizer's output size
            return spec.builder(num_classes=num_classes,
                                input_shape=_checked_shape(spec, num_classes, shape), **options)

        model = add_neural_resizer(build, num_classes, input_shape, resizer,
                                   default_target_size=spec.default_input_shape[:2])
    else:
        model = spec.builder(num_classes=num_classes, input_shape=input_shape, **options)
    make_onednn_safe(model)
    return model


def _checked_shape(spec, num_classes, input_shape):
    """``input_shape`` (the architecture's default when None) after the checks every build
    shares."""
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    input_shape = tuple(input_shape or spec.default_input_shape)
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"input_shape must be (height, width, 1 or 3), got {input_shape}")
    return input_shape
