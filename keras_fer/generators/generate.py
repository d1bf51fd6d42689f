"""One door to the generators (``create_generator``) and re-rendering images (``generate``)."""

import inspect

import numpy as np

from keras_fer.generators.common import condition_groups, uses_batch_axis
from keras_fer.generators.patchy import build_patchy_generator
from keras_fer.generators.simple import build_simple_generator

KINDS = {"simple": build_simple_generator, "patchy": build_patchy_generator}


def create_generator(kind="simple", input_shape=(28, 28, 1), num_conditions=10, **options):
    """Builds a Batch Transformer generator: ``kind="simple"`` (paper 000 Figure 1) or
    ``"patchy"`` (Figure 2). ``options`` go to :func:`build_simple_generator` or
    :func:`build_patchy_generator` (bottleneck, axis, patch_size, compression, ...).

    The model takes ``[image, one_hot_1, ...]`` (image floats in [0, 1], one one-hot input
    per condition group) and returns the re-rendered image in [0, 1] (not clipped). Train it
    to reconstruct each image under its own label (:func:`train_generator`); generate by
    giving another label (:func:`generate`).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    builder = KINDS[kind]
    accepted = [p for p in inspect.signature(builder).parameters
                if p not in ("input_shape", "num_conditions")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for kind={kind!r}; accepted: {accepted}")
    return builder(input_shape, num_conditions, **options)


def _one_group(value, width, n, name):
    """(n, width) float32 one-hot rows from an int, n ints, or (n, width) rows."""
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.ndim == 1 and arr.dtype.kind in "iu":
        labels = np.broadcast_to(arr.astype(np.int64), (n,)) if arr.ndim == 0 else arr
        if len(labels) != n:
            raise ValueError(f"condition {name!r} has {len(labels)} labels for {n} images")
        if labels.size and (labels.min() < 0 or labels.max() >= width):
            raise ValueError(f"condition {name!r} labels must lie in [0, {width}), got "
                             f"{sorted(set(labels.tolist()))}")
        return np.eye(width, dtype=np.float32)[labels]
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[-1] != width:
        raise ValueError(f"condition {name!r} must be an int label, {n} int labels or one-hot "
                         f"rows of width {width}, got an array of shape {np.shape(value)}")
    if len(arr) == 1 and n != 1:
        arr = np.repeat(arr, n, axis=0)
    if len(arr) != n:
        raise ValueError(f"condition {name!r} has {len(arr)} rows for {n} images")
    return arr.astype(np.float32)


def encode_conditions(groups, condition, n):
    """The model's condition inputs (a list of (n, width) arrays) from ``condition``.

    ``condition``: for a single group an int label (all images), ``n`` int labels, or one-hot
    rows; for several groups a dict ``{group: any of those}`` naming every group.
    """
    if not isinstance(condition, dict):
        if len(groups) != 1:
            raise ValueError(f"condition must be a dict naming every group {list(groups)} for "
                             f"this generator, got {type(condition).__name__}")
        condition = {next(iter(groups)): condition}
    missing = [g for g in groups if g not in condition]
    extra = [g for g in condition if g not in groups]
    if missing or extra:
        raise ValueError(f"condition must give exactly the groups {list(groups)}; missing "
                         f"{missing}, unknown {extra}")
    return [_one_group(condition[g], w, n, g) for g, w in groups.items()]


def as_model_images(images, image_shape):
    """(float32 images in [0, 1] of shape (n, H, W, C), was uint8, was a single image)."""
    arr = np.asarray(images)
    shape = tuple(image_shape)
    grey = shape[-1] == 1
    single = arr.shape == shape or (grey and arr.shape == shape[:2])
    if single:
        arr = arr[None]
    if grey and arr.ndim == 3 and arr.shape[1:] == shape[:2]:
        arr = arr[..., None]
    if arr.ndim != 4 or tuple(arr.shape[1:]) != tuple(image_shape):
        raise ValueError(f"images must have shape (n, {', '.join(map(str, image_shape))}) or "
                         f"one image of shape {tuple(image_shape)}, got {np.shape(images)}")
    was_uint8 = arr.dtype == np.uint8
    x = arr.astype(np.float32) / 255.0 if was_uint8 else arr.astype(np.float32)
    return x, was_uint8, single


def from_model_images(x, was_uint8, single):
    x = np.clip(x, 0.0, 1.0)
    if was_uint8:
        x = np.round(x * 255.0).astype(np.uint8)
    return x[0] if single else x


def predict_images(model, x, conditions, batch_size=None):
    """Raw model outputs for float images ``x`` and encoded ``conditions``, in batches.

    ``batch_size=None`` runs everything as one batch, which for a batch-mode generator is the
    author's way (the BPC statistics then run over all requested renditions together).
    """
    n = len(x)
    step = n if batch_size is None else int(batch_size)
    if step < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    outs = []
    for start in range(0, n, step):
        part = [x[start:start + step]] + [c[start:start + step] for c in conditions]
        outs.append(np.asarray(model(part, training=False)))
    return np.concatenate(outs) if outs else np.zeros((0,) + x.shape[1:], np.float32)


def generate(model, images, condition, batch_size=None):
    """Re-renders ``images`` under ``condition`` with a trained generator.

    Args:
        images: (n, H, W, C) or one (H, W, C) image (grey images may drop C); uint8 in
            [0, 255] (returned as uint8) or floats in [0, 1] (returned as floats, clipped).
        condition: an int label for every image, one label per image, one-hot rows, or for
            multi-group generators a dict ``{group: ...}`` (see :func:`encode_conditions`).
        batch_size: None (default) runs all images as one batch. With ``axis="batch"``
            attention a sample's output depends on the rest of its batch, as at training
            time; give batches of the training batch size or larger (a batch of one is
            degenerate: every BPC column statistic is then a single number, see
            ``keras_fer.layers.BatchAttention``). ``axis="tokens"`` generators give the same
            output for any batching.
    """
    image_shape = tuple(model.inputs[0].shape[1:])
    x, was_uint8, single = as_model_images(images, image_shape)
    conditions = encode_conditions(condition_groups(model), condition, len(x))
    if uses_batch_axis(model) and batch_size is not None and batch_size < 2:
        raise ValueError("batch_size must be >= 2 for a generator with axis='batch' attention "
                         "(a batch of one has no column statistics); use None or more")
    return from_model_images(predict_images(model, x, conditions, batch_size),
                             was_uint8, single)
