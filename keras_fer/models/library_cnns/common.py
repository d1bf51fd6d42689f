"""What every library CNN family shares: the family record, the builder, weight loading.

A library family is a backbone factory (keras-hub or keras.applications, configured from
arguments, random initialisation, nothing downloaded) plus, where one exists, the timm model
whose checkpoint converts into it. ``build_library_classifier`` wraps the backbone in
``FERClassifier`` through ``cnn_common.build_classifier`` (the same door as keras-fer's own
CNNs) and loads ``weights``:

- a timm checkpoint: a ``.safetensors`` file, a ``timm.models.save_for_hf`` folder, or a
  mapping of arrays, read without torch and converted by the family's mapping
  (``convert.py``); the classifier head is copied when it fits (``load_head``);
- a Keras weights file (``.weights.h5``, or a legacy ``.h5`` such as keras.applications'
  ``*_notop.h5``) saved from the same backbone, loaded with ``load_weights``.

Either way a grey-input model takes RGB weights with the stem convolution summed over the
three input channels (timm's ``adapt_input_conv``), and a failed load restores the model's
previous weights before the ``ValueError`` (naming the file and the first missing or
mismatched tensor) propagates.
"""

import dataclasses
import functools
import inspect
import os
import warnings
from collections.abc import Mapping
from typing import Callable, Optional, Tuple

import numpy as np

from keras_fer.models import cnn_common, timm_convert

KERAS_WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".hdf5")


@dataclasses.dataclass(frozen=True)
class LibraryFamily:
    """One registered library architecture.

    Attributes:
        arch: registry name.
        make_backbone: ``fn(input_shape, **options) -> keras.Model`` (image -> feature map).
        min_size: smallest height/width the backbone accepts.
        stem: name of the convolution that sees the image (for ``reverse_input_channels``;
            None where Keras names it automatically).
        timm_arch: the timm model whose checkpoints convert (None: no exact counterpart).
        timm_convert: ``fn(backbone, state_dict)`` copying a timm checkpoint.
        head_prefix: timm's classifier tensor prefix (``fc``, ``classifier``), or None when
            timm's head does not sit on globally pooled features (VGG's ConvMlp).
        ignore_prefixes: checkpoint tensors deliberately left unused.
    """

    arch: str
    make_backbone: Callable
    min_size: int
    stem: Optional[str]
    timm_arch: Optional[str] = None
    timm_convert: Optional[Callable] = None
    head_prefix: Optional[str] = None
    ignore_prefixes: Tuple[str, ...] = ()


def check_input_shape(family, input_shape):
    height, width = input_shape[:2]
    if height is None or width is None or min(height, width) < family.min_size:
        raise ValueError(f"input_shape {tuple(input_shape)} is too small for {family.arch}: "
                         f"height and width must be >= {family.min_size}")


def build_library_classifier(family, num_classes, input_shape, options, dropout=0.0,
                             weights=None, load_head="auto", reverse_input_channels=False):
    """``FERClassifier`` over ``family.make_backbone(input_shape, **options)``.

    ``options`` are the backbone's architecture options (recorded in ``arch_options``);
    ``weights``/``load_head``/``reverse_input_channels`` concern the weights file only.
    """
    # An option the backbone does not take is a TypeError before anything is built.
    inspect.signature(family.make_backbone).bind(tuple(input_shape), **options)
    check_input_shape(family, input_shape)
    check_weights_argument(family, weights)
    backbone = family.make_backbone(tuple(input_shape), **options)
    loader = functools.partial(load_weights, family=family, options=options,
                               reverse_input_channels=reverse_input_channels)
    return cnn_common.build_classifier(backbone, family.arch, num_classes, input_shape,
                                       options, dropout, weights, load_head, loader)


def check_weights_argument(family, weights):
    """Cheap checks of ``weights`` before any model is built (building takes seconds)."""
    kinds = ("a timm .safetensors file, a save_for_hf folder, a mapping of arrays or a Keras "
             f"{'/'.join(KERAS_WEIGHT_SUFFIXES)} file")
    if weights is None:
        return
    if not isinstance(weights, (str, os.PathLike, Mapping)):
        raise ValueError(f"weights must be {kinds}, got {type(weights).__name__}")
    if is_keras_weights_file(weights):
        if not os.path.exists(os.fspath(weights)):
            raise ValueError(f"weights file {os.fspath(weights)!r} does not exist")
        return
    if family.timm_convert is None:
        what = "a mapping" if isinstance(weights, Mapping) else repr(os.fspath(weights))
        raise ValueError(
            f"weights={what} is not a Keras weights file, and {family.arch} has no timm "
            "counterpart whose checkpoint converts exactly (see its docstring); pass a Keras "
            f"{'/'.join(KERAS_WEIGHT_SUFFIXES)} file")
    if isinstance(weights, Mapping):
        return
    path = os.fspath(weights)
    if not os.path.isdir(path) and not path.endswith(".safetensors"):
        raise ValueError(f"weights file {path!r} is not {kinds}")
    if not os.path.exists(path):
        raise ValueError(f"weights file {path!r} does not exist")


def is_keras_weights_file(weights):
    return isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(
        KERAS_WEIGHT_SUFFIXES)


def load_weights(model, weights, family, options=None, load_head="auto",
                 reverse_input_channels=False):
    """Loads ``weights`` (timm checkpoint or Keras weights file, see the module docstring)
    into ``model`` (a FERClassifier of ``family``). All or nothing. Returns whether the
    classifier head was loaded (always False for a Keras backbone file).

    ``reverse_input_channels=True`` reverses the stem's input channels after loading a Keras
    file, for weights trained on BGR images (Keras' ImageNet ResNet50, caffe preprocessing)
    so that the model takes RGB like every other keras-fer model.
    """
    check_weights_argument(family, weights)
    if not is_keras_weights_file(weights):
        if reverse_input_channels:
            raise ValueError("reverse_input_channels applies to Keras weights files only")
        if family.head_prefix is None and load_head is True:
            raise ValueError(f"load_head=True, but {family.arch}'s timm head sits on timm's "
                             "pre-logits, which FERClassifier does not have")
        # Without a usable timm head, the checkpoint's head tensors are ignored, not copied.
        head_prefix = family.head_prefix or "head"
        return timm_convert.load_checkpoint(
            model, weights, family.timm_convert, head_prefix=head_prefix,
            load_head=load_head if family.head_prefix else False,
            ignore_prefixes=family.ignore_prefixes)
    backup = [v.numpy() for v in model.weights]
    try:
        _load_keras_file(model.backbone, os.fspath(weights), family, options or {})
        if reverse_input_channels:
            kernel = model.backbone.get_layer(family.stem).kernel
            kernel.assign(kernel.numpy()[:, :, ::-1, :])
    except Exception:
        for variable, value in zip(model.weights, backup):
            variable.assign(value)
        raise
    return False


def _load_keras_file(backbone, path, family, options):
    try:
        strict_load_weights(backbone, path)
        return
    except Exception as err:
        if backbone.input_shape[-1] == 3:
            raise ValueError(f"cannot load Keras weights file {path!r} into {family.arch}'s "
                             f"backbone: {err}") from err
    # RGB weights for a grey model: load them into an RGB twin, then copy with the stem
    # summed over the three channels.
    try:
        twin = family.make_backbone(tuple(backbone.input_shape[1:3]) + (3,), **options)
        strict_load_weights(twin, path)
    except Exception as err:
        raise ValueError(f"cannot load Keras weights file {path!r} into {family.arch}'s "
                         f"backbone (grey, nor its RGB twin): {err}") from err
    copy_weights_adapting_stem(twin, backbone)


def strict_load_weights(model, path):
    """``model.load_weights(path)``, but parts of the model that the file does not fill are
    an error: Keras only warns ("Skipping ...") and keeps their fresh weights, which would
    make a file of another architecture load "successfully"."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(path)
    for warning in caught:
        message = str(warning.message)
        if "Skipping" in message or "could not be loaded" in message:
            raise ValueError(message)
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)


def copy_weights_adapting_stem(source, target):
    """Copies ``source``'s weights into ``target`` (same architecture, variable for variable);
    a 4-D kernel that differs only in its input channels is adapted (the stem)."""
    for src, dst in zip(source.weights, target.weights, strict=True):
        value = np.asarray(src.numpy())
        if value.shape != tuple(dst.shape) and value.ndim == 4 and (
                value.shape[:2] + value.shape[3:] == tuple(dst.shape[:2]) + tuple(dst.shape[3:])):
            value = timm_convert.adapt_input_channels(value, dst.shape[2])
        if value.shape != tuple(dst.shape):
            raise ValueError(f"weight {src.path!r} has shape {value.shape}, but {dst.path!r} "
                             f"expects {tuple(dst.shape)}")
        dst.assign(value)
