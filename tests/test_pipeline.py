"""make_dataset: decoding, channel conversion, resizing, labels, augmentation, errors."""

import numpy as np
import pytest
from PIL import Image

import keras
import tensorflow as tf

from keras_fer.datasets import FERDataset, ImageReadError, Record, make_dataset
from keras_fer.datasets.augment import augmentation_layers

CLASSES = ("angry", "happy", "sad")


def _grey(rng, n, shape=(48, 48)):
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def _inline(n=6, shape=(48, 48), seed=0):
    rng = np.random.default_rng(seed)
    return FERDataset("inline", [Record(f"row {i}", i % 3, image=img)
                                 for i, img in enumerate(_grey(rng, n, shape))], CLASSES)


def _all(ds):
    xs, ys = [], []
    for x, y in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def _bilinear_up(image, out_h, out_w):
    """Independent reference: bilinear with half-pixel centres, edge-clamped (upscaling)."""
    h, w = image.shape[:2]
    img = image.astype(np.float64)

    def coords(n_out, n_in):
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        src = np.clip(src, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    r0, r1, fr = coords(out_h, h)
    c0, c1, fc = coords(out_w, w)
    top = img[r0][:, c0] * (1 - fc)[None, :, None] + img[r0][:, c1] * fc[None, :, None]
    bot = img[r1][:, c0] * (1 - fc)[None, :, None] + img[r1][:, c1] * fc[None, :, None]
    return top * (1 - fr)[:, None, None] + bot * fr[:, None, None]


def _halve_antialiased(image):
    """Independent reference for a 2x antialiased bilinear downscale: the triangle kernel
    stretched by 2 gives taps (1, 3, 3, 1)/8, renormalised where they fall off the edge."""
    img = image.astype(np.float64)

    def along(a, axis):
        n = a.shape[axis]
        out = []
        for i in range(n // 2):
            idx = np.array([2 * i - 1, 2 * i, 2 * i + 1, 2 * i + 2])
            wts = np.array([1, 3, 3, 1], np.float64)
            keep = (idx >= 0) & (idx < n)
            taken = np.take(a, idx[keep], axis=axis)
            shape = [1] * a.ndim
            shape[axis] = keep.sum()
            out.append((taken * wts[keep].reshape(shape)).sum(axis=axis) / wts[keep].sum())
        return np.stack(out, axis=axis)

    return along(along(img, 0), 1)


# ----------------------------------------------------------------------------- decoding

def test_inline_grey_is_exact_and_ordered_without_shuffle():
    ds = _inline(7)
    x, y = _all(make_dataset(ds, batch_size=3, shuffle=False))
    assert x.shape == (7, 48, 48, 1) and x.dtype == np.float32
    # [0, 255] by default: what the models take (they normalise inside) and the app feeds.
    np.testing.assert_allclose(x[..., 0], np.stack([r.image for r in ds]), atol=1e-7)
    np.testing.assert_array_equal(y, [r.label for r in ds])
    assert y.dtype == np.int32


def test_grey_replicated_to_three_channels():
    ds = _inline(2)
    x, _ = _all(make_dataset(ds, channels=3, shuffle=False))
    for c in range(3):
        np.testing.assert_allclose(x[..., c], np.stack([r.image for r in ds]), atol=1e-7)


def test_rgb_to_grey_uses_rec601_luma():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    ds = FERDataset("rgb", [Record(f"r{i}", 0, image=im) for i, im in enumerate(rgb)], CLASSES)
    x, _ = _all(make_dataset(ds, image_size=(16, 16), channels=1, shuffle=False,
                             normalization={"scale": 1.0}))
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    np.testing.assert_allclose(x[..., 0], np.round(luma), atol=1.0)
    assert np.mean(np.abs(x[..., 0] - np.round(luma))) < 0.01  # ties only


def test_upscale_matches_bilinear_reference():
    rng = np.random.default_rng(2)
    small = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    ds = FERDataset("s", [Record("s", 0, image=small)], CLASSES)
    x, _ = _all(make_dataset(ds, image_size=(36, 25), shuffle=False, normalization={"scale": 1}))
    expected = _bilinear_up(small[:, :, None], 36, 25)
    np.testing.assert_allclose(x[0], np.round(expected), atol=1.0)


def test_downscale_is_antialiased():
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (20, 14, 3), dtype=np.uint8)
    ds = FERDataset("b", [Record("b", 0, image=big)], CLASSES)
    x, _ = _all(make_dataset(ds, image_size=(10, 7), channels=3, shuffle=False,
                             normalization={"scale": 1}))
    np.testing.assert_allclose(x[0], np.round(_halve_antialiased(big)), atol=1.0)


def _write(path, array, **kwargs):
    image = array if isinstance(array, Image.Image) else Image.fromarray(array)
    image.save(path, **kwargs)
    return str(path)


def test_mixed_inline_shapes_and_file_formats_keep_order(tmp_path):
    rng = np.random.default_rng(4)
    grey = rng.integers(0, 256, (30, 20), dtype=np.uint8)
    yy, xx = np.mgrid[0:24, 0:24]
    # Smooth, so that JPEG's loss stays small; BMP and PNG must come back exactly anyway.
    rgb = np.stack([xx * 10, yy * 10, 255 - xx * 5], axis=-1).astype(np.uint8)
    records = [
        Record("inline 48", 0, image=rng.integers(0, 256, (48, 48), dtype=np.uint8)),
        Record("inline odd rgb", 1, image=rng.integers(0, 256, (31, 17, 3), dtype=np.uint8)),
        Record("png", 2, path=_write(tmp_path / "a.png", grey)),
        Record("tiff", 0, path=_write(tmp_path / "b.tiff", grey)),
        Record("jpg", 1, path=_write(tmp_path / "c.jpg", rgb, quality=95)),
        Record("bmp", 2, path=_write(tmp_path / "d.bmp", rgb)),
        Record("gif", 0, path=_write(tmp_path / "e.gif", grey)),
        Record("palette tiff", 1, path=_write(tmp_path / "f.tif",
                                              Image.fromarray(grey).convert("P"))),
        Record("rgba png", 2, path=_write(tmp_path / "g.png",
                                          np.dstack([rgb, np.full((24, 24), 9, np.uint8)]))),
        Record("inline 2d small", 0, image=rng.integers(0, 256, (5, 9), dtype=np.uint8)),
    ]
    ds = FERDataset("mixed", records, CLASSES)
    x, y = _all(make_dataset(ds, image_size=(30, 20), channels=3, batch_size=4, shuffle=False,
                             normalization={"scale": 1}))
    assert x.shape == (10, 30, 20, 3)
    np.testing.assert_array_equal(y, [r.label for r in records])
    # Lossless files at the target size come back exactly, whichever decoder ran.
    for i in (2, 3, 6):
        np.testing.assert_array_equal(x[i], np.repeat(grey[:, :, None], 3, axis=2))
    x2, y2 = _all(make_dataset(ds, image_size=(24, 24), channels=3, shuffle=False,
                               normalization={"scale": 1}))
    np.testing.assert_array_equal(x2[5], rgb)  # BMP
    np.testing.assert_array_equal(x2[8], rgb)  # RGBA: alpha dropped
    assert np.abs(x2[4] - rgb).mean() < 4  # JPEG is lossy


def test_shuffle_is_a_seeded_permutation():
    ds = _inline(40, shape=(4, 4))
    ds = FERDataset("d", [Record(r.source, i % 3, image=np.full((4, 4), i, np.uint8))
                          for i, r in enumerate(ds)], CLASSES)

    def ids(seed):
        x, _ = _all(make_dataset(ds, image_size=(4, 4), batch_size=7, seed=seed,
                                 normalization={"scale": 1}))
        return x[:, 0, 0, 0].astype(int).tolist()

    a, b, c = ids(5), ids(5), ids(6)
    assert sorted(a) == list(range(40)) and a == b and a != c and a != list(range(40))


def test_epochs_reshuffle_and_repeat():
    ds = FERDataset("d", [Record(str(i), 0, image=np.full((2, 2), i, np.uint8)) for i in range(12)],
                    CLASSES)
    it = iter(make_dataset(ds, image_size=(2, 2), batch_size=12, seed=0, repeat=True,
                           normalization={"scale": 1}))
    first, second = (next(it)[0].numpy()[:, 0, 0, 0] for _ in range(2))
    assert sorted(first) == sorted(second) == list(range(12)) and list(first) != list(second)


def test_batch_of_one_drop_remainder_and_none_batch_dimension():
    ds = _inline(5)
    t = make_dataset(ds, batch_size=2, drop_remainder=False)
    assert t.element_spec[0].shape.as_list() == [None, 48, 48, 1]
    assert [b[0].shape[0] for b in t] == [2, 2, 1]
    t = make_dataset(ds, batch_size=2, drop_remainder=True)
    assert [b[0].shape[0] for b in t] == [2, 2]
    one = make_dataset(FERDataset("one", ds.records[:1], CLASSES), batch_size=8)
    assert [b[0].shape[0] for b in one] == [1]


def test_file_cache(tmp_path):
    ds = _inline(3)
    t = make_dataset(ds, cache=str(tmp_path / "cache"), shuffle=False)
    a, _ = _all(t)
    b, _ = _all(t)
    np.testing.assert_array_equal(a, b)
    assert list(tmp_path.iterdir())


# ------------------------------------------------------------------------------ labels

def test_label_modes():
    dist = np.array([0.2, 0.7, 0.1], np.float32)
    ds = FERDataset("d", [Record("r", 1, image=np.zeros((4, 4), np.uint8), distribution=dist)],
                    CLASSES)
    _, y = _all(make_dataset(ds, image_size=(4, 4), label_mode="onehot"))
    np.testing.assert_array_equal(y, [[0, 1, 0]])
    _, y = _all(make_dataset(ds, image_size=(4, 4), label_mode="distribution"))
    np.testing.assert_allclose(y, [dist])
    only_images = make_dataset(ds, image_size=(4, 4), label_mode=None)
    assert next(iter(only_images)).shape == (1, 4, 4, 1)


def test_label_errors_name_the_record():
    ds = FERDataset("d", [Record("row 9", 1, image=np.zeros((4, 4), np.uint8))], CLASSES)
    with pytest.raises(ValueError, match="row 9 has none"):
        make_dataset(ds, label_mode="distribution")
    unlabelled = FERDataset("d", [Record("row 2", None, image=np.zeros((4, 4), np.uint8))], CLASSES)
    with pytest.raises(ValueError, match="row 2"):
        make_dataset(unlabelled)


# ----------------------------------------------------------------------- normalisation

def test_normalization_tuple_and_dict():
    ds = _inline(2)
    raw = np.stack([r.image for r in ds]).astype(np.float32)[..., None]
    x, _ = _all(make_dataset(ds, shuffle=False, normalization=(0.5, 0.5)))
    np.testing.assert_allclose(x, (raw / 255 - 0.5) / 0.5, atol=1e-6)
    assert x.min() >= -1 and x.max() <= 1
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    x, _ = _all(make_dataset(ds, channels=3, shuffle=False,
                             normalization={"mean": mean, "std": std}))
    np.testing.assert_allclose(x, (np.repeat(raw, 3, -1) / 255 - np.array(mean)) / np.array(std),
                               atol=1e-5)
    x, _ = _all(make_dataset(ds, shuffle=False, normalization={"scale": 1.0, "mean": 127.5,
                                                               "std": 127.5}))
    np.testing.assert_allclose(x, (raw - 127.5) / 127.5, atol=1e-6)


@pytest.mark.parametrize("normalization, match", [
    ((0.5, 0.0), "std must be > 0"),
    ({"mean": [0.1, 0.2, 0.3]}, "mean must be a scalar or have 1 values"),
    ({"stddev": 1}, "unknown keys"),
    ("imagenet", "normalization must be"),
])
def test_normalization_errors(normalization, match):
    with pytest.raises(ValueError, match=match):
        make_dataset(_inline(1), normalization=normalization)


# ------------------------------------------------------------------------ augmentation

@pytest.mark.parametrize("augment", ["basic", "basic_erasing", "randaugment",
                                     [keras.layers.RandomFlip("horizontal_and_vertical")]])
def test_augmentation_changes_training_batches(augment):
    ds = _inline(8, shape=(16, 16))
    kw = dict(image_size=(16, 16), batch_size=8, shuffle=False)
    plain, _ = _all(make_dataset(ds, **kw))
    aug, y = _all(make_dataset(ds, augment=augment, seed=1, **kw))
    assert aug.shape == plain.shape and aug.dtype == np.float32
    assert np.all(np.isfinite(aug)) and aug.min() >= -1e-4 and aug.max() <= 255 + 1e-3
    assert not np.allclose(aug, plain)
    np.testing.assert_array_equal(y, [r.label for r in ds])  # labels untouched


def test_random_erasing_blanks_a_rectangle_in_about_a_quarter_of_the_faces():
    ds = _inline(256, shape=(24, 24))
    for record in ds:
        record.image[...] = 100  # a flat face: every erased pixel shows
    eraser = augmentation_layers("basic_erasing", seed=0)[-1]
    x, _ = _all(make_dataset(ds, image_size=(24, 24), batch_size=64, shuffle=False,
                             augment=[eraser], seed=2))
    erased = (x != 100).mean(axis=(1, 2, 3))
    assert 0.15 <= np.mean(erased > 0) <= 0.35
    assert erased.max() <= 0.25  # at most 20 % of the area, plus rounding to whole pixels
    rows, cols = np.nonzero(x[int(np.argmax(erased)), :, :, 0] != 100)
    # One rectangle: every pixel of its bounding box is erased.
    assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


def test_augmentation_runs_after_the_cache():
    ds = _inline(4, shape=(16, 16))
    t = make_dataset(ds, image_size=(16, 16), batch_size=4, shuffle=False, augment="basic", seed=0)
    a, _ = _all(t)
    b, _ = _all(t)
    assert not np.allclose(a, b)  # a cached augmentation would repeat every epoch


@pytest.mark.parametrize("kwargs", [{"mixup": 0.4}, {"cutmix": 1.0},
                                    {"mixup": 0.4, "cutmix": 1.0}])
def test_mixup_cutmix_mix_labels(kwargs):
    ds = _inline(16, shape=(16, 16))
    x, y = _all(make_dataset(ds, image_size=(16, 16), batch_size=16, label_mode="onehot",
                             seed=3, **kwargs))
    assert y.dtype == np.float32 and y.shape == (16, 3)
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)
    assert np.any((y > 1e-3) & (y < 1 - 1e-3))  # some soft targets


def test_mixup_needs_soft_labels():
    with pytest.raises(ValueError, match="mixup .* needs label_mode='onehot'"):
        make_dataset(_inline(2), mixup=0.2)
    with pytest.raises(ValueError, match="cutmix must be None or an alpha > 0"):
        make_dataset(_inline(2), cutmix=-1, label_mode="onehot")


def test_augmentation_presets_and_errors():
    assert augmentation_layers(None) == []
    assert len(augmentation_layers("basic", seed=0)) == 5
    erasing = augmentation_layers("basic_erasing", seed=0)
    assert len(erasing) == 6 and isinstance(erasing[-1], keras.layers.RandomErasing)
    assert isinstance(augmentation_layers("randaugment")[-1], keras.layers.RandAugment)
    with pytest.raises(ValueError, match="augment must be None, one of"):
        augmentation_layers("strong")
    with pytest.raises(ValueError, match=r"augment\[1\] must be a Keras layer"):
        augmentation_layers([keras.layers.RandomFlip(), 3])


# ------------------------------------------------------------------------------ errors

def test_corrupt_and_missing_files_are_named_up_front(tmp_path):
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"not an image at all")
    ds = FERDataset("d", [Record(str(bad), 0, path=str(bad))], CLASSES)
    with pytest.raises(ImageReadError, match="corrupt.png"):
        make_dataset(ds)
    missing = str(tmp_path / "gone.jpg")
    with pytest.raises(ImageReadError, match="gone.jpg: file does not exist"):
        make_dataset(FERDataset("d", [Record(missing, 0, path=missing)], CLASSES))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.jpg: file is empty"):
        make_dataset(FERDataset("d", [Record(str(empty), 0, path=str(empty))], CLASSES))


def test_truncated_file_found_by_full_validation(tmp_path):
    path = _write(tmp_path / "cut.png", np.random.default_rng(0).integers(0, 256, (64, 64),
                                                                        dtype=np.uint8))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    ds = FERDataset("d", [Record(path, 0, path=path)], CLASSES)
    with pytest.raises(ImageReadError, match="cut.png"):
        make_dataset(ds, validate="full")


def test_pil_fallback_errors_name_the_file_inside_the_graph(tmp_path):
    bad = tmp_path / "broken.tiff"
    bad.write_bytes(b"II*\x00garbage")
    ds = FERDataset("d", [Record(str(bad), 0, path=str(bad))], CLASSES)
    with pytest.raises(tf.errors.OpError, match="broken.tiff"):
        _all(make_dataset(ds, validate=False))


def test_sixteen_bit_png_goes_through_read_image(tmp_path):
    values = np.array([[0, 1000], [30000, 65535]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    ds = FERDataset("d", [Record(str(path), 0, path=str(path))], CLASSES)
    x, _ = _all(make_dataset(ds, image_size=(2, 2), normalization={"scale": 1}))
    expected = np.uint8(np.clip(values / 65535.0 * 255, 0, 255))  # read_image's scaling
    np.testing.assert_allclose(x[0, ..., 0], expected, atol=1)


def test_bad_inline_images_are_named():
    ds = FERDataset("d", [Record("row 5", 0, image=np.zeros((4, 4), np.float32))], CLASSES)
    with pytest.raises(ValueError, match="row 5: inline image must be uint8"):
        make_dataset(ds)
    ds = FERDataset("d", [Record("row 6", 0, image=np.zeros((4, 4, 5), np.uint8))], CLASSES)
    with pytest.raises(ValueError, match=r"row 6: inline image must have shape \(H, W\)"):
        make_dataset(ds)


@pytest.mark.parametrize("kwargs, match", [
    ({"channels": 2}, "channels must be 1 or 3, got 2"),
    ({"image_size": (48,)}, "image_size must be"),
    ({"image_size": (0, 48)}, "image_size must be"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"label_mode": "sparse"}, "label_mode must be one of"),
    ({"validate": "quick"}, "validate must be"),
    ({"cache": 3}, "cache must be"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_dataset(_inline(1), **kwargs)


def test_empty_dataset_and_wrong_type():
    with pytest.raises(ValueError, match="has no records"):
        make_dataset(FERDataset("nothing", [], CLASSES))
    with pytest.raises(ValueError, match="must be a FERDataset"):
        make_dataset([np.zeros((4, 4))])


# ------------------------------------------------------------------------- integration

def test_trains_a_small_model():
    ds = _inline(12, shape=(24, 24))
    train = make_dataset(ds, image_size=(24, 24), batch_size=4, augment="basic", seed=0,
                         label_mode="onehot", mixup=0.2, normalization=(0.5, 0.5))
    model = keras.Sequential([keras.Input((24, 24, 1)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    history = model.fit(train, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
