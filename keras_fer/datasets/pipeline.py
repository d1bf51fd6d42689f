"""tf.data input pipelines from ``FERDataset`` objects (``make_dataset``).

Stages, in order (each for a reason):

1. **Order**: records are permuted once in NumPy with ``seed`` when ``shuffle`` is on, so
   that the cached order is already random. Readers yield records grouped by class (CK+48
   folders, ``balance`` output); a bounded shuffle buffer alone would then serve
   single-class batches early in each epoch.
2. **Decode**: inline arrays (FER2013 rows) enter through ``from_tensor_slices`` (one dense
   tensor when all share a shape, a ragged one otherwise); files are read and decoded in the
   graph with ``tf.io.decode_image`` (JPEG, PNG, BMP, GIF); formats TF cannot decode (TIFF:
   JAFFE; 16-bit images) go through ``read_image`` (PIL) in a ``tf.numpy_function``.
3. **Standardise**: alpha dropped; grey replicated to 3 channels or RGB reduced to grey with
   the Rec. 601 luma weights (0.299, 0.587, 0.114, as PIL and OpenCV use); bilinear resize
   with antialiasing (it matters when downscaling AffectNet-size images to 48x48); rounded
   back to uint8.
4. **Cache** the uint8 result (4x smaller than float32, and the rounding is at most half a
   grey level on data that was uint8 to begin with), so decode and resize run once.
5. **Shuffle** (per epoch, seeded), **repeat**, **batch**.
6. Per batch: cast to float32 in [0, 255]; **augment** (Keras 3 preprocessing layers, only
   when asked: pass ``augment``/``mixup``/``cutmix`` for the training split only); MixUp /
   CutMix; **normalise** ``(x * scale - mean) / std`` only when asked (the default keeps
   [0, 255], which the models take); **prefetch**.

Every map runs with ``num_parallel_calls=tf.data.AUTOTUNE``.

File errors. A corrupt file inside a running tf.data graph surfaces as a TensorFlow error
that does not name the file, so ``validate`` checks files up front and raises
``ImageReadError`` naming the file: ``True`` (default) opens each file's header with PIL
(existence, non-empty, recognised format; about 0.1 ms a file, so seconds for AffectNet's
~300k files) and also picks the decoder from the real format rather than the extension;
``"full"`` decodes every file completely (catches truncated pixel data too, at the cost of
one extra decode of the whole dataset); ``False`` skips the check (the decoder is then chosen
by extension). Files that go through the PIL fallback always raise errors naming the file.
"""

import os

import numpy as np

from keras_fer.datasets.augment import augmentation_layers
from keras_fer.datasets.image_io import (ImageReadError, load_pixels_from_path, open_image,
                                        read_image)
from keras_fer.validation import positive_int

#: Rec. 601 luma weights (PIL's "L" conversion, OpenCV's RGB2GRAY).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_TF_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
_TF_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_LABEL_MODES = ("int", "onehot", "distribution", None)
_NORMALIZATION_KEYS = ("mean", "std", "scale")


def load_pixels(record):
    """uint8 pixels of a record: its inline image, or its file read by
    ``image_io.load_pixels_from_path`` (RGB when the file holds colour, grey otherwise)."""
    if record.image is not None:
        return np.asarray(record.image)
    return load_pixels_from_path(record.path)


def _check_file(path, full):
    """Raises ``ImageReadError`` naming ``path`` if unusable; returns True if TF can decode it."""
    if full:
        read_image(path, "L")
    with open_image(path) as img:
        fmt, mode = img.format, img.mode
    # TF's decoders would silently rescale 16-bit data differently from read_image.
    return fmt in _TF_FORMATS and not mode.startswith("I")


def _parse_normalization(normalization, channels):
    """``(scale, mean, std)`` as float32 arrays broadcastable to (..., channels)."""
    # No normalisation by default: every model of the zoo takes [0, 255] and normalises
    # inside, so the default pipeline feeds exactly what the app and the serving signature
    # feed. Explicit mean/std are in [0, 1] units (ImageNet's 0.485...), hence scale 1/255.
    scale, mean, std = 1.0, 0.0, 1.0
    if normalization is None:
        pass
    elif isinstance(normalization, dict):
        unknown = set(normalization) - set(_NORMALIZATION_KEYS)
        if unknown:
            raise ValueError(f"normalization dict has unknown keys {sorted(unknown)}; "
                             f"expected some of {_NORMALIZATION_KEYS}")
        if "mean" in normalization or "std" in normalization:
            scale = 1.0 / 255.0
        scale = normalization.get("scale", scale)
        mean = normalization.get("mean", mean)
        std = normalization.get("std", std)
    elif isinstance(normalization, (tuple, list)) and len(normalization) == 2:
        scale = 1.0 / 255.0
        mean, std = normalization
    else:
        raise ValueError(f"normalization must be None, (mean, std) or a dict with keys "
                         f"{_NORMALIZATION_KEYS}, got {normalization!r}")
    values = {}
    for key, value in (("scale", scale), ("mean", mean), ("std", std)):
        arr = np.asarray(value, dtype=np.float32).reshape(-1)
        if arr.size not in (1, channels):
            raise ValueError(f"normalization {key} must be a scalar or have {channels} values "
                             f"(one per channel), got {arr.size}")
        values[key] = arr
    if np.any(values["std"] <= 0):
        raise ValueError(f"normalization std must be > 0, got {values['std'].tolist()}")
    if np.any(values["scale"] <= 0):
        raise ValueError(f"normalization scale must be > 0, got {values['scale'].tolist()}")
    return values["scale"], values["mean"], values["std"]


def _labels_array(dataset, label_mode):
    records, n_classes = dataset.records, len(dataset.classes)
    if label_mode is None:
        return None
    missing = [r.source for r in records if r.label is None]
    if label_mode in ("int", "onehot") and missing:
        raise ValueError(f"label_mode={label_mode!r} needs a label on every record; "
                         f"{len(missing)} have none, e.g. {missing[0]}")
    if label_mode == "int":
        return np.asarray([r.label for r in records], dtype=np.int32)
    if label_mode == "onehot":
        return np.eye(n_classes, dtype=np.float32)[[r.label for r in records]]
    rows = []
    for r in records:
        if r.distribution is None:
            raise ValueError(f"label_mode='distribution' needs a distribution on every record; "
                             f"{r.source} has none (use label_mode='onehot' for hard labels)")
        d = np.asarray(r.distribution, dtype=np.float32)
        if d.shape != (n_classes,):
            raise ValueError(f"{r.source}: distribution has shape {d.shape}, expected "
                             f"({n_classes},) for {n_classes} classes")
        rows.append(d)
    return np.stack(rows)


def _inline_hwc(record):
    image = np.asarray(record.image)
    if image.dtype != np.uint8:
        raise ValueError(f"{record.source}: inline image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4) or 0 in image.shape:
        raise ValueError(f"{record.source}: inline image must have shape (H, W) or (H, W, C) "
                         f"with C in 1..4, got {np.asarray(record.image).shape}")
    return image


def standardize_image(image, channels, image_size):
    """uint8 (h, w, c) with c in 1..4 -> uint8 (H, W, channels) (stage 3 above).

    Public because every path that feeds a trained model must prepare pixels exactly as
    training did: the serving signature and the app call this same function."""
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    c = tf.shape(image)[-1]
    # Alpha carries no face information: RGBA -> RGB, grey+alpha -> grey.
    image = tf.cond(c >= 3, lambda: image[:, :, :3], lambda: image[:, :, :1])
    image = tf.cast(image, tf.float32)
    c = tf.shape(image)[-1]
    if channels == 1:
        weights = tf.constant(LUMA_WEIGHTS, tf.float32)
        image = tf.cond(
            c == 3,
            lambda: tf.reduce_sum(image * weights, axis=-1, keepdims=True),
            lambda: image)
    else:
        image = tf.cond(c == 1, lambda: tf.tile(image, [1, 1, 3]), lambda: image)
    image = tf.ensure_shape(image, [None, None, channels])
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.constant(image_size)))
    image = tf.cond(
        same,
        lambda: image,
        lambda: tf.image.resize(image, image_size, method="bilinear", antialias=True))
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(image, [image_size[0], image_size[1], channels])


def _inline_part(records, indices, labels):
    """Images (and labels) of inline records, dense when all shapes agree, ragged otherwise."""
    import tensorflow as tf

    arrays = [_inline_hwc(records[i]) for i in indices]
    if len({a.shape for a in arrays}) == 1:
        images = np.stack(arrays)
        part = tf.data.Dataset.from_tensor_slices(images)
    else:
        shapes = np.asarray([a.shape for a in arrays], dtype=np.int32)
        flat = tf.RaggedTensor.from_row_lengths(
            np.concatenate([a.reshape(-1) for a in arrays]),
            np.asarray([a.size for a in arrays], dtype=np.int64))
        part = tf.data.Dataset.from_tensor_slices((flat, shapes)).map(
            lambda values, shape: tf.reshape(values, shape),
            num_parallel_calls=tf.data.AUTOTUNE)
    return part, None if labels is None else labels[indices]


def find_unreadable_image(*datasets):
    """``ImageReadError`` naming the first file of ``datasets`` that the pipeline's decoders
    reject, or None. For after the fact: an error raised inside a running tf.data graph
    (``Invalid PNG data``) does not say which file it came from, and checking every file up
    front on every read would double the I/O of large folders."""
    import tensorflow as tf

    for dataset in datasets:
        for record in getattr(dataset, "records", ()):
            if record.path is None:
                continue
            try:
                if _check_file(record.path, full=False):
                    tf.io.decode_image(tf.io.read_file(record.path), expand_animations=False)
                else:
                    read_image(record.path, "L")
            except ImageReadError as err:
                return err
            except (tf.errors.OpError, OSError, ValueError) as err:
                reason = str(getattr(err, "message", err)).splitlines()[0]
                return ImageReadError(f"{record.path}: corrupt image ({reason})")
    return None


def _decode_tf(path):
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=0, dtype=tf.uint8,
                               expand_animations=False)
    return tf.ensure_shape(image, [None, None, None])


def _decode_pil(path):
    import tensorflow as tf

    def read(p):
        image = load_pixels_from_path(p.decode() if isinstance(p, bytes) else str(p))
        return image if image.ndim == 3 else image[:, :, None]

    image = tf.numpy_function(read, [path], tf.uint8, stateful=False)
    return tf.ensure_shape(image, [None, None, None])


def _path_part(records, indices, labels, decoder):
    import tensorflow as tf

    paths = np.asarray([records[i].path for i in indices], dtype=object).astype(str)
    part = tf.data.Dataset.from_tensor_slices(paths).map(
        decoder, num_parallel_calls=tf.data.AUTOTUNE)
    return part, None if labels is None else labels[indices]


def _mix_layers(mixup, cutmix, label_mode, seed):
    import keras

    layers = []
    for name, value in (("mixup", mixup), ("cutmix", cutmix)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be None or an alpha > 0, got {value!r}")
        if label_mode not in ("onehot", "distribution"):
            raise ValueError(f"{name} mixes labels, so it needs label_mode='onehot' or "
                             f"'distribution', got label_mode={label_mode!r}")
        s = None if seed is None else int(seed) + (7 if name == "mixup" else 11)
        layers.append(keras.layers.MixUp(alpha=float(value), seed=s) if name == "mixup"
                      else keras.layers.CutMix(factor=float(value), seed=s))
    return layers


def _check_size(image_size):
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(v, (int, np.integer)) and v > 0 for v in image_size)):
        raise ValueError(f"image_size must be (height, width) with positive integers, "
                         f"got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


def make_dataset(dataset, image_size=(48, 48), channels=1, batch_size=32, shuffle=True, seed=None,
                 augment=None, mixup=None, cutmix=None, label_mode="int", normalization=None,
                 cache=True, prefetch=True, repeat=False, drop_remainder=False, validate=True,
                 shuffle_buffer=10000):
    """A ``tf.data.Dataset`` of ``(images, labels)`` batches from a ``FERDataset``.

    Images are float32 ``(B, H, W, channels)``, normalised as ``(x * scale - mean) / std``
    from pixel values ``x`` in [0, 255]. ``normalization`` is ``None`` (default: pixels
    stay in [0, 255], what every ``keras_fer`` model takes, normalising inside, and what
    ``keras_fer.app`` and the serving signature feed), ``(mean, std)`` (with scale
    1/255: ``(0.5, 0.5)`` is seed 003's [-1, 1], for models without their own
    normalisation) or a dict ``{"mean", "std", "scale"}`` (``scale`` defaults to 1/255 when
    ``mean`` or ``std`` is given, else 1). ``mean``/``std`` are scalars or one value per
    channel.

    Labels: ``label_mode="int"`` int32 ``(B,)``; ``"onehot"`` float32 ``(B, classes)``;
    ``"distribution"`` the records' soft labels (FERPlus votes); ``None`` yields images only.

    ``augment`` (``None``, ``"basic"``, ``"randaugment"`` or a list of Keras layers; see
    ``keras_fer.datasets.augment.augmentation_layers``), ``mixup`` (Beta alpha) and ``cutmix``
    (Beta alpha, Keras' ``factor``) are applied per batch after the cache; give them for the
    training split only. MixUp and CutMix mix labels and so need ``"onehot"`` or
    ``"distribution"``; with both, each batch gets one of the two at random (as timm does),
    never both.

    ``cache``: ``True`` (memory), a file name (``tf.data`` file cache, for sets that do not fit
    in memory, e.g. FER2013 at 224x224x3 is 4.3 GB), or ``False``. ``shuffle_buffer`` bounds
    the per-epoch shuffle buffer (in images). ``validate``: see the module docstring.

    The pipeline's order is a deterministic function of ``seed``; augmentation randomness
    is seeded too but runs in parallel maps, so it is not bit-for-bit reproducible.
    """
    import tensorflow as tf

    # A FERDataset, recognised by what it holds rather than by its class: records.py imports
    # this module (FERDataset.to_tf_dataset), so importing records here would be a circle.
    if not all(hasattr(dataset, a) for a in ("records", "classes", "name")):
        raise ValueError(f"dataset must be a FERDataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError(f"dataset {dataset.name!r} has no records")
    image_size = _check_size(image_size)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    batch_size = positive_int(batch_size, "batch_size")
    if label_mode not in _LABEL_MODES:
        raise ValueError(f"label_mode must be one of {_LABEL_MODES}, got {label_mode!r}")
    if validate not in (True, False, "full"):
        raise ValueError(f"validate must be True, False or 'full', got {validate!r}")
    shuffle_buffer = positive_int(shuffle_buffer, "shuffle_buffer")
    scale, mean, std = _parse_normalization(normalization, channels)
    aug_layers = augmentation_layers(augment, seed=seed)
    mix_layers = _mix_layers(mixup, cutmix, label_mode, seed)

    records = dataset.records
    labels = _labels_array(dataset, label_mode)
    n = len(records)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)

    # Which decoder each record needs: 0 inline, 1 TF decode, 2 PIL fallback.
    kind = np.empty(n, dtype=np.int64)
    for i, r in enumerate(records):
        if r.image is not None:
            kind[i] = 0
        elif r.path is None:
            raise ValueError(f"{r.source}: record has neither an image nor a path")
        elif validate:
            kind[i] = 1 if _check_file(r.path, full=validate == "full") else 2
        else:
            kind[i] = 1 if os.path.splitext(r.path)[1].lower() in _TF_EXTENSIONS else 2

    parts, choices = [], np.empty(n, dtype=np.int64)
    for k, build in ((0, lambda idx: _inline_part(records, idx, labels)),
                     (1, lambda idx: _path_part(records, idx, labels, _decode_tf)),
                     (2, lambda idx: _path_part(records, idx, labels, _decode_pil))):
        idx = order[kind[order] == k]
        if len(idx) == 0:
            continue
        images, part_labels = build(idx)
        images = images.map(lambda im: standardize_image(im, channels, image_size),
                            num_parallel_calls=tf.data.AUTOTUNE)
        if part_labels is not None:
            images = tf.data.Dataset.zip(images, tf.data.Dataset.from_tensor_slices(part_labels))
        choices[kind[order] == k] = len(parts)
        parts.append(images)
    if len(parts) == 1:
        ds = parts[0]
    else:
        # Restores the shuffled record order across the inline / TF / PIL parts.
        ds = tf.data.Dataset.choose_from_datasets(
            parts, tf.data.Dataset.from_tensor_slices(choices))
        ds = ds.apply(tf.data.experimental.assert_cardinality(n))

    if cache is True:
        ds = ds.cache()
    elif isinstance(cache, (str, os.PathLike)):
        ds = ds.cache(os.fspath(cache))
    elif cache is not False:
        raise ValueError(f"cache must be True, False or a file name, got {cache!r}")
    if shuffle:
        ds = ds.shuffle(min(n, int(shuffle_buffer)), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder,
                  num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(_batch_fn(aug_layers, mix_layers, scale, mean, std, label_mode is not None, seed),
                num_parallel_calls=tf.data.AUTOTUNE)
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds


def _batch_fn(aug_layers, mix_layers, scale, mean, std, has_labels, seed):
    """The per-batch map: float32, augmentation, MixUp/CutMix, normalisation."""
    import keras
    import tensorflow as tf

    scale, mean, std = (tf.constant(v) for v in (scale, mean, std))

    def augment(images):
        for layer in aug_layers:
            if isinstance(layer, keras.layers.Layer):
                images = layer(images, training=True)
            else:
                images = layer(images)
            images = tf.cast(images, tf.float32)
        return images

    def mix(images, labels):
        def apply(layer):
            def run():
                out = layer({"images": images, "labels": labels}, training=True)
                return tf.cast(out["images"], tf.float32), tf.cast(out["labels"], tf.float32)
            return run

        if len(mix_layers) == 1:
            return apply(mix_layers[0])()
        coin = tf.random.uniform([], seed=seed)
        return tf.cond(coin < 0.5, apply(mix_layers[0]), apply(mix_layers[1]))

    def finish(images):
        return (images * scale - mean) / std

    if has_labels:
        def fn(images, labels):
            images = augment(tf.cast(images, tf.float32))
            if mix_layers:
                images, labels = mix(images, tf.cast(labels, tf.float32))
            return finish(images), labels
    else:
        def fn(images):
            return finish(augment(tf.cast(images, tf.float32)))
    return fn
