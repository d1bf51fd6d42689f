"""The paper's "mutation table" (000, Figures 4-7) as a PNG, and a TensorBoard callback.

Layout (Figure 4): one column per input image; the top row holds the originals and row
``k + 1`` the images re-rendered under condition ``k`` of one group. With ``names`` a label
column on the left names the rows. The grid is drawn pixel-exactly (no plotting library): each
cell is the image enlarged ``zoom`` times by pixel repetition, cells are separated by ``pad``
white pixels, so the PNG's size is known in advance (:func:`grid_size`) and nothing is
resampled.
"""

import io
import os

import numpy as np

import keras

from keras_fer.generators.common import condition_groups
from keras_fer.generators.generate import (as_model_images, encode_conditions,
                                           from_model_images, predict_images)
from keras_fer.validation import check_int

LABEL_WIDTH = 72  # pixels of the left label column (fits "surprise" in PIL's default font)


def grid_size(rows, cols, cell_shape, zoom=1, pad=2, label_width=0):
    """(height, width) in pixels of a grid of ``rows`` x ``cols`` cells of ``cell_shape``."""
    h, w = cell_shape[0] * zoom, cell_shape[1] * zoom
    return pad + rows * (h + pad), label_width + pad + cols * (w + pad)


def _to_rgb_uint8(images):
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def mutation_grid(originals, generated, names=None, zoom=1, pad=2):
    """The table as an RGB uint8 array.

    Args:
        originals: (n, H, W[, C]) images (uint8, or floats in [0, 1]).
        generated: (k, n, H, W[, C]): ``generated[j, i]`` is image ``i`` under condition ``j``.
        names: optional ``k`` row names (the top row is labelled "input").
        zoom: integer enlargement of every cell; pad: white pixels between cells.
    """
    zoom, pad = check_int(zoom, "zoom", 1), check_int(pad, "pad", 0)
    originals = _to_rgb_uint8(originals)
    generated = np.asarray(generated)
    if generated.ndim < 4 or generated.shape[1] != len(originals):
        raise ValueError(f"generated must have shape (conditions, {len(originals)}, H, W[, C]) "
                         f"for {len(originals)} originals, got {generated.shape}")
    k = generated.shape[0]
    generated = _to_rgb_uint8(generated.reshape((-1,) + generated.shape[2:]))
    if generated.shape[1:] != originals.shape[1:]:
        raise ValueError(f"generated images {generated.shape[1:]} and originals "
                         f"{originals.shape[1:]} differ in shape")
    if names is not None and len(names) != k:
        raise ValueError(f"names must give one name per condition ({k}), got {len(names)}")
    cells = np.concatenate([originals, generated]).reshape((k + 1, len(originals))
                                                           + originals.shape[1:])
    label_width = LABEL_WIDTH if names is not None else 0
    rows, cols = k + 1, len(originals)
    height, width = grid_size(rows, cols, originals.shape[1:3], zoom, pad, label_width)
    grid = np.full((height, width, 3), 255, dtype=np.uint8)
    ch, cw = originals.shape[1] * zoom, originals.shape[2] * zoom
    for r in range(rows):
        for c in range(cols):
            cell = np.repeat(np.repeat(cells[r, c], zoom, axis=0), zoom, axis=1)
            top, left = pad + r * (ch + pad), label_width + pad + c * (cw + pad)
            grid[top:top + ch, left:left + cw] = cell
    if names is not None:
        grid = _draw_labels(grid, ["input"] + [str(n) for n in names], ch, pad)
    return grid


def _draw_labels(grid, labels, cell_height, pad):
    from PIL import Image, ImageDraw

    img = Image.fromarray(grid)
    draw = ImageDraw.Draw(img)
    for r, text in enumerate(labels):
        top = pad + r * (cell_height + pad) + max(0, cell_height // 2 - 6)
        draw.text((4, top), text[:11], fill=(0, 0, 0))
    return np.asarray(img)


def png_bytes(grid):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def mutation_table(model, images, group=None, names=None, fixed=None, path=None, zoom=None,
                   pad=2, batch_size=None):
    """Re-renders every image under every condition of ``group``; returns the grid (and
    writes it as a PNG to ``path`` when given).

    Args:
        model: a trained generator (:func:`create_generator`).
        images: (n, H, W[, C]) uint8 or [0, 1] floats.
        group: the condition group to rotate through (default: the only one).
        names: row names for the group's conditions (e.g. class names); None draws no labels.
        fixed: for multi-group generators, ``{other group: labels}`` held fixed (e.g. each
            image's own subject).
        zoom: cell enlargement (default: cells of at least 64 pixels).
        batch_size: see :func:`generate`; None runs all ``n * k`` renditions as one batch
            (the author's generation batch: every image repeated under all conditions).
    """
    groups = condition_groups(model)
    if group is None:
        if len(groups) != 1:
            raise ValueError(f"group must name one of {list(groups)} for this generator")
        group = next(iter(groups))
    if group not in groups:
        raise ValueError(f"group must be one of {list(groups)}, got {group!r}")
    image_shape = tuple(model.inputs[0].shape[1:])
    x, was_uint8, single = as_model_images(images, image_shape)
    n, k = len(x), groups[group]
    fixed = dict(fixed or {})
    if group in fixed:
        raise ValueError(f"fixed must not include the rotated group {group!r}")
    # Rendition j * n + i is image i under condition j; fixed labels repeat per condition.
    condition = {}
    for g, v in fixed.items():
        per_image = _per_image(v, n, g)
        condition[g] = np.tile(per_image, (k,) + (1,) * (per_image.ndim - 1))
    condition[group] = np.repeat(np.arange(k), n)
    conditions = encode_conditions(groups, condition, n * k)
    out = predict_images(model, np.tile(x, (k, 1, 1, 1)), conditions, batch_size)
    generated = from_model_images(out, False, False).reshape((k, n) + image_shape)
    zoom = zoom or max(1, -(-64 // max(image_shape[:2])))
    grid = mutation_grid(x, generated, names=names, zoom=zoom, pad=pad)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(png_bytes(grid))
    return grid


def _per_image(value, n, name):
    arr = np.asarray(value)
    if arr.ndim == 0:
        return np.full((n,), int(arr), dtype=np.int64)
    if len(arr) != n:
        raise ValueError(f"fixed[{name!r}] must give one value per image ({n}), got {len(arr)}")
    return arr


class MutationTableCallback(keras.callbacks.Callback):
    """Writes the mutation table of ``images`` to TensorBoard (``mutation_table`` image
    summary under ``log_dir``) every ``every`` epochs, and optionally as
    ``png_dir/epoch_{epoch:04d}.png``. Works with ``model.fit`` and with
    :class:`keras_fer.training.Trainer` (both set ``self.model``)."""

    def __init__(self, log_dir, images, group=None, names=None, fixed=None, every=1,
                 png_dir=None, zoom=None):
        super().__init__()
        self.log_dir = log_dir
        self.images = images
        self.group = group
        self.names = names
        self.fixed = fixed
        self.every = check_int(every, "every", 1)
        self.png_dir = png_dir
        self.zoom = zoom
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        import tensorflow as tf

        path = (os.path.join(self.png_dir, f"epoch_{epoch + 1:04d}.png")
                if self.png_dir else None)
        grid = mutation_table(self.model, self.images, group=self.group, names=self.names,
                              fixed=self.fixed, path=path, zoom=self.zoom)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=epoch + 1):
            tf.summary.image("mutation_table", grid[None])
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
