"""Image augmentation: online Keras presets for ``make_dataset`` and seed 003's offline recipe.

Two kinds live here because they serve different purposes:

* **Online** (``augmentation_layers``): Keras 3 preprocessing layers run inside the tf.data
  graph on every training batch, so each epoch sees new variants. Used by
  ``keras_fer.datasets.make_dataset(augment=...)``.
* **Offline** (``OfflineAugmentation``): seed 003 (section 5.2) balances AVFER by writing
  augmented copies of minority-class images *before* training, with Keras'
  ``ImageDataGenerator(zoom_range=0.6, rotation_range=10, width_shift_range=0.2,
  height_shift_range=0.2, brightness_range=(0.2, 0.6))``. ``ImageDataGenerator`` is gone from
  Keras 3, so ``OfflineAugmentation`` re-implements its sampling and geometry in NumPy/OpenCV,
  seeded by a ``numpy.random.Generator`` so that ``keras_fer.datasets.balance`` is
  reproducible.
"""

import math

import numpy as np

#: Online presets accepted by ``make_dataset(augment=...)``.
PRESETS = ("basic", "basic_erasing", "randaugment")


def augmentation_layers(augment, seed=None):
    """Returns the list of Keras layers (or callables) for ``augment``.

    ``augment`` is ``None`` (no augmentation), ``"basic"``, ``"randaugment"`` or a list of
    Keras layers / callables taking and returning a float32 image batch in [0, 255].

    * ``"basic"``: horizontal flip, rotation up to +-10 degrees (seed 003's angle), zoom and
      translation up to 10 %, additive brightness up to +-20 % of the range. Mild on purpose:
      48x48 faces lose the mouth or eyes under the paper's offline 0.6 zoom / 0.2 shifts,
      which are applied once there, not every epoch on every image.
    * ``"basic_erasing"``: ``"basic"``, then random erasing (Zhong et al. 2020) of one
      rectangle of about 2-20 % of the face, filled with noise, in a quarter of the images
      (``RandomErasing(factor=0.5)`` draws each image's probability from [0, 0.5]): occluded
      eyes or mouth force the use of the rest of the face.
    * ``"randaugment"``: horizontal flip then ``keras.layers.RandAugment`` (2 ops, factor
      0.5). Keras draws the two operations once per *batch* (magnitudes per image), so one
      batch shares its operation types; across batches every op appears.

    Every preset layer works on ``value_range=(0, 255)``: the pipeline augments before it
    normalises, so augmentation does not depend on the model's normalisation.
    """
    if augment is None:
        return []
    import keras  # here, not at import time: readers and balance() need no TensorFlow

    if isinstance(augment, str):
        if augment not in PRESETS:
            raise ValueError(f"augment must be None, one of {PRESETS} or a list of layers, "
                             f"got {augment!r}")
        seeds = _layer_seeds(seed)
        if augment in ("basic", "basic_erasing"):
            layers = [
                keras.layers.RandomFlip("horizontal", seed=next(seeds)),
                keras.layers.RandomRotation(10.0 / 360.0, fill_mode="nearest", seed=next(seeds)),
                keras.layers.RandomZoom(0.1, fill_mode="nearest", seed=next(seeds)),
                keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=next(seeds)),
                keras.layers.RandomBrightness(0.2, value_range=(0, 255), seed=next(seeds)),
            ]
            if augment == "basic_erasing":
                layers.append(keras.layers.RandomErasing(factor=0.5, scale=(0.02, 0.2),
                                                         value_range=(0, 255),
                                                         seed=next(seeds)))
            return layers
        return [
            keras.layers.RandomFlip("horizontal", seed=next(seeds)),
            keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.5,
                                     seed=next(seeds)),
        ]
    if isinstance(augment, (list, tuple)):
        for i, layer in enumerate(augment):
            if not callable(layer):
                raise ValueError(f"augment[{i}] must be a Keras layer or a callable, "
                                 f"got {type(layer).__name__}")
        return list(augment)
    if callable(augment):
        return [augment]
    raise ValueError(f"augment must be None, one of {PRESETS} or a list of layers, "
                     f"got {type(augment).__name__}")


def _layer_seeds(seed):
    """Distinct seeds per layer (the same seed would correlate e.g. zoom and translation)."""
    i = 0
    while True:
        yield None if seed is None else int(seed) + 1000 * i
        i += 1


class OfflineAugmentation:
    """Seed 003's offline augmentation, with ``ImageDataGenerator``'s semantics.

    Per image, independently (as ``ImageDataGenerator.get_random_transform`` samples them):
    rotation ``theta ~ U(-rotation, rotation)`` degrees; shifts ``tx ~ U(-height_shift,
    height_shift) * H`` rows and ``ty ~ U(-width_shift, width_shift) * W`` columns; zoom
    ``zx, zy ~ U(1 - zoom, 1 + zoom)`` drawn separately (so the aspect ratio changes too);
    brightness factor ``b ~ U(*brightness)``. The affine matrix ``R(theta) T(tx, ty) Z(zx, zy)``
    maps output to input coordinates about the image centre (``transform_matrix_offset_center``)
    with bilinear sampling and nearest-edge fill (``fill_mode="nearest"``), then the pixels are
    multiplied by ``b`` (PIL ``ImageEnhance.Brightness``, which is what ``brightness_range``
    applies), rounded and clipped to uint8.

    Note the paper's ``brightness_range=(0.2, 0.6)`` is a *multiplicative* factor below 1:
    every augmented copy is darkened to 20-60 % of its brightness. That is the faithful
    reading of the paper's setting; pass ``brightness=(0.8, 1.2)`` for the more usual
    symmetric range, or ``None`` to leave brightness alone. (``ImageDataGenerator`` also
    min-max stretched each image to [0, 255] on its way through PIL in that step; that side
    effect is not reproduced.)
    """

    def __init__(self, zoom=0.6, rotation=10.0, width_shift=0.2, height_shift=0.2,
                 brightness=(0.2, 0.6)):
        for name, value in (("zoom", zoom), ("rotation", rotation),
                            ("width_shift", width_shift), ("height_shift", height_shift)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if zoom >= 1:
            raise ValueError(f"zoom must be < 1 (zoom factors are drawn from [1 - zoom, "
                             f"1 + zoom]), got {zoom}")
        if brightness is not None:
            if (not isinstance(brightness, (list, tuple)) or len(brightness) != 2
                    or not 0 <= brightness[0] <= brightness[1]):
                raise ValueError(f"brightness must be None or (low, high) with 0 <= low <= high, "
                                 f"got {brightness!r}")
            brightness = (float(brightness[0]), float(brightness[1]))
        self.zoom = float(zoom)
        self.rotation = float(rotation)
        self.width_shift = float(width_shift)
        self.height_shift = float(height_shift)
        self.brightness = brightness

    def get_config(self):
        return {"zoom": self.zoom, "rotation": self.rotation, "width_shift": self.width_shift,
                "height_shift": self.height_shift, "brightness": self.brightness}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"OfflineAugmentation({args})"

    def sample(self, rng, height, width):
        """Draws one set of parameters, in ``ImageDataGenerator``'s order."""
        theta = rng.uniform(-self.rotation, self.rotation) if self.rotation else 0.0
        tx = rng.uniform(-self.height_shift, self.height_shift) * height if self.height_shift \
            else 0.0
        ty = rng.uniform(-self.width_shift, self.width_shift) * width if self.width_shift else 0.0
        if self.zoom:
            zx, zy = rng.uniform(1 - self.zoom, 1 + self.zoom, 2)
        else:
            zx = zy = 1.0
        b = rng.uniform(*self.brightness) if self.brightness else 1.0
        return {"theta": float(theta), "tx": float(tx), "ty": float(ty), "zx": float(zx),
                "zy": float(zy), "brightness": float(b)}

    def __call__(self, image, rng):
        """Returns one augmented uint8 copy of ``image`` (HxW or HxWxC), same shape."""
        image = np.asarray(image)
        params = self.sample(rng, image.shape[0], image.shape[1])
        return apply_transform(image, **params)


def affine_matrix(height, width, theta=0.0, tx=0.0, ty=0.0, zx=1.0, zy=1.0):
    """The 3x3 output->input matrix of ``ImageDataGenerator``, in (row, col) coordinates."""
    t = math.radians(theta)
    rotation = np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0],
                         [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    matrix = rotation @ shift @ zoom
    # About the centre, as transform_matrix_offset_center does (with its (h - 1) / 2 offsets).
    o_x, o_y = height / 2 - 0.5, width / 2 - 0.5
    offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return offset @ matrix @ reset


def apply_transform(image, theta=0.0, tx=0.0, ty=0.0, zx=1.0, zy=1.0, brightness=1.0):
    """Applies one fixed ``ImageDataGenerator`` transform to a uint8 image (HxW or HxWxC)."""
    import cv2

    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {image.shape}")
    height, width = image.shape[:2]
    out = image.astype(np.float32)
    if (theta, tx, ty, zx, zy) != (0.0, 0.0, 0.0, 1.0, 1.0):
        m = affine_matrix(height, width, theta, tx, ty, zx, zy)
        # OpenCV works in (x=col, y=row): swap the two axes of the (row, col) matrix.
        cv_m = np.array([[m[1, 1], m[1, 0], m[1, 2]], [m[0, 1], m[0, 0], m[0, 2]]])
        warped = cv2.warpAffine(out, cv_m, (width, height),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REPLICATE)
        out = warped.reshape(image.shape)
    if brightness != 1.0:
        out = out * brightness
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
