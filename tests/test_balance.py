"""merge / balance (seed 003's AVFER recipe) and the offline augmentation they use."""

import collections

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from keras_fer.datasets import FERDataset, Record, balance, merge
from keras_fer.datasets.augment import OfflineAugmentation, affine_matrix, apply_transform
from keras_fer.datasets.balance import MergedRecord, record_dataset


def _images(rng, n, shape=(8, 8)):
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def _dataset(name, classes, counts, seed=0, shape=(8, 8)):
    rng = np.random.default_rng(seed)
    records = []
    for label, count in enumerate(counts):
        for i, image in enumerate(_images(rng, count, shape)):
            records.append(Record(f"{name}:{classes[label]}:{i}", label, image=image,
                                  subject=f"S{i % 3}"))
    return FERDataset(name, records, classes)


# --------------------------------------------------------------------------------- merge

def test_merge_reindexes_by_name_onto_canonical_order():
    fer = _dataset("fer", ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
                   [1] * 7)
    ck = _dataset("ck", ("happy", "contempt", "angry"), [2, 2, 2], seed=1)
    merged = merge([fer, ck])
    assert merged.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
                              "contempt")
    assert len(merged) == 13
    for original, r in zip(list(fer) + list(ck), merged):
        source_ds = fer if r.dataset == "fer" else ck
        assert merged.classes[r.label] == source_ds.classes[original.label]
        assert r.source == original.source and r.subject == original.subject
        assert r.image is original.image
        assert isinstance(r, MergedRecord) and isinstance(r, Record)
        assert record_dataset(r) == source_ds.name
    assert merged.class_counts()["happy"] == 3 and merged.class_counts()["contempt"] == 2
    assert merged.info["merged_from"] == ["fer", "ck"]


def test_merge_extra_class_goes_after_canonical_ones():
    a = _dataset("a", ("closed_eyes", "happy"), [1, 1])
    b = _dataset("b", ("sad",), [1])
    assert merge([a, b]).classes == ("happy", "sad", "closed_eyes")


def test_merge_explicit_classes_excludes_and_counts_the_rest():
    ck = _dataset("ck", ("happy", "contempt", "angry"), [2, 3, 1])
    merged = merge([ck], classes=("angry", "happy"))
    assert merged.class_counts() == {"angry": 1, "happy": 2}
    assert merged.info["excluded"] == {"ck: class 'contempt' is not in the merged classes": 3}


def test_merge_remaps_and_renormalises_distributions():
    classes = ("neutral", "happy", "contempt")
    dist = np.array([0.5, 0.3, 0.2], np.float32)
    only_contempt = np.array([0.0, 0.0, 1.0], np.float32)
    img = np.zeros((4, 4), np.uint8)
    ds = FERDataset("ferplus", [Record("r0", 0, image=img, distribution=dist),
                                Record("r1", 1, image=img, distribution=only_contempt)], classes)
    merged = merge([ds], classes=("happy", "sad", "neutral"))
    assert len(merged) == 1  # r1's mass lies only on a dropped class
    expected = np.array([0.3, 0.0, 0.5]) / 0.8  # independent: reorder by name, renormalise
    np.testing.assert_allclose(merged[0].distribution, expected, rtol=1e-6)
    assert merged[0].label == 2
    assert sum(merged.info["excluded"].values()) == 1


def test_merge_keeps_skipped_and_unlabelled():
    img = np.zeros((4, 4), np.uint8)
    ds = FERDataset("x", [Record("u", None, image=img)], ("happy",),
                    skipped=[("bad.png", "corrupt")])
    merged = merge([ds])
    assert merged[0].label is None and merged.skipped == [("bad.png", "corrupt")]


@pytest.mark.parametrize("args, match", [
    (([],), "at least one"),
    (([object()],), r"datasets\[0\] must be a FERDataset"),
    (([FERDataset("a", [], ("happy",))], ("happy", "happy")), "repeat"),
])
def test_merge_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        merge(*args)


def test_merge_bad_distribution_shape_names_the_record():
    ds = FERDataset("x", [Record("row 3", 0, image=np.zeros((2, 2), np.uint8),
                                 distribution=np.ones(5))], ("happy", "sad"))
    with pytest.raises(ValueError, match="row 3.*shape"):
        merge([ds])


# ------------------------------------------------------------------------------- balance

def test_balance_exact_counts_and_originals_preferred():
    ds = _dataset("d", ("angry", "happy", "sad"), [3, 12, 10])
    out = balance(ds, per_class=10, seed=0)
    assert out.class_counts() == {"angry": 10, "happy": 10, "sad": 10}
    by_class = collections.defaultdict(list)
    for r in out:
        by_class[r.label].append(r)
    originals = {r.source for r in ds}
    # Minority class: all 3 originals kept, 7 augmented copies.
    angry_sources = [r.source for r in by_class[0]]
    assert {s for s in angry_sources if s in originals} == {r.source for r in ds if r.label == 0}
    assert sum(s.startswith("augmented from ") for s in angry_sources) == 7
    # Majority and exact classes: originals only, no copies.
    for label in (1, 2):
        assert all(r.source in originals for r in by_class[label])
        assert len({r.source for r in by_class[label]}) == 10
    assert out.info["balanced"]["classes"]["happy"] == {"originals": 10, "copies": 0, "dropped": 2}
    assert out.info["balanced"]["classes"]["angry"] == {"originals": 3, "copies": 7}


def test_balance_copies_spread_evenly_and_keep_metadata():
    ds = _dataset("d", ("angry", "happy"), [3, 1])
    out = balance(ds, per_class=11, seed=3)
    copies = collections.Counter(r.source[len("augmented from "):] for r in out
                                 if r.source.startswith("augmented from "))
    angry = sorted(v for k, v in copies.items() if ":angry:" in k)
    assert angry == [2, 3, 3]  # 8 copies over 3 originals: as even as possible
    assert copies["d:happy:0"] == 10
    originals = {r.source: r for r in ds}
    for r in out:
        if r.source.startswith("augmented from "):
            o = originals[r.source[len("augmented from "):]]
            assert (r.label, r.subject, r.path) == (o.label, o.subject, None)
            assert r.image.shape == o.image.shape and r.image.dtype == np.uint8


def test_balance_is_deterministic_given_the_seed():
    ds = _dataset("d", ("angry", "happy"), [2, 9])
    a, b = balance(ds, 5, seed=7), balance(ds, 5, seed=7)
    c = balance(ds, 5, seed=8)
    assert [r.source for r in a] == [r.source for r in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image, y.image)
    differs = any(x.source != y.source or not np.array_equal(x.image, y.image)
                  for x, y in zip(a, c))
    assert differs


def test_balance_reads_path_records_and_keeps_colour(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i, mode in enumerate(("L", "RGB")):
        shape = (10, 12) if mode == "L" else (10, 12, 3)
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
        records.append(Record(str(path), i, path=str(path)))
    out = balance(FERDataset("files", records, ("sad", "happy")), 3, seed=0,
                  augment=OfflineAugmentation(brightness=None))
    shapes = {r.label: r.image.shape for r in out if r.image is not None}
    assert shapes == {0: (10, 12), 1: (10, 12, 3)}
    assert sum(r.path is not None for r in out) == 2


def test_balance_without_augmentation_copies_pixels():
    ds = _dataset("d", ("angry",), [2])
    out = balance(ds, 5, seed=0, augment=False)
    originals = {r.source: r.image for r in ds}
    for r in out:
        if r.source.startswith("copy of "):
            np.testing.assert_array_equal(r.image, originals[r.source[len("copy of "):]])


def test_balance_custom_augment_callable_gets_a_seeded_generator():
    calls = []

    def invert(image, rng):
        calls.append(isinstance(rng, np.random.Generator))
        return 255 - image

    ds = _dataset("d", ("angry",), [1])
    out = balance(ds, 3, augment=invert)
    np.testing.assert_array_equal(out[1].image, 255 - ds[0].image)
    assert calls == [True, True]


def test_balance_empty_class():
    ds = _dataset("d", ("angry", "disgust"), [2, 0])
    with pytest.raises(ValueError, match="'disgust' has no records"):
        balance(ds, 3)
    assert balance(ds, 3, skip_empty=True).class_counts() == {"angry": 3, "disgust": 0}


def test_balance_unlabelled_records_are_counted_not_kept():
    img = np.zeros((4, 4), np.uint8)
    ds = FERDataset("d", [Record("a", 0, image=img), Record("u", None, image=img)], ("happy",))
    out = balance(ds, 1)
    assert [r.source for r in out] == ["a"]
    assert sum(out.info["excluded"].values()) == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"per_class": 0}, "per_class must be an integer >= 1, got 0"),
    ({"per_class": 2.5}, "per_class"),
    ({"per_class": 2, "augment": "zoom"}, "augment must be"),
])
def test_balance_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        balance(_dataset("d", ("a",), [1]), **kwargs)


# --------------------------------------------------------------------- offline augmentation

def _smooth_image(h, w, channels=None):
    yy, xx = np.mgrid[0:h, 0:w]
    img = 128 + 60 * np.sin(xx / 5.0) + 50 * np.cos(yy / 7.0)
    if channels:
        img = np.stack([img, img[::-1], 255 - img], axis=-1)[..., :channels]
    return np.clip(img, 0, 255).astype(np.uint8)


def _reference_transform(image, theta, tx, ty, zx, zy):
    """ImageDataGenerator's own code path: scipy affine_transform per channel, order 1,
    nearest fill, with the centred (row, col) matrix built here from the paper's parts."""
    h, w = image.shape[:2]
    t = np.deg2rad(theta)
    m = (np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
         @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
         @ np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]]))
    o = np.array([h / 2 - 0.5, w / 2 - 0.5])
    matrix = m[:2, :2]
    offset = m[:2, 2] + o - matrix @ o
    planes = image[..., None] if image.ndim == 2 else image
    out = np.stack([ndimage.affine_transform(planes[..., c].astype(np.float64), matrix, offset,
                                             order=1, mode="nearest")
                    for c in range(planes.shape[-1])], axis=-1)
    return out[..., 0] if image.ndim == 2 else out


@pytest.mark.parametrize("shape", [(33, 41), (32, 32, 3)])
@pytest.mark.parametrize("params", [
    dict(theta=8.0, tx=0.0, ty=0.0, zx=1.0, zy=1.0),
    dict(theta=0.0, tx=3.5, ty=-4.0, zx=1.0, zy=1.0),
    dict(theta=-6.0, tx=2.0, ty=1.0, zx=0.7, zy=1.3),
])
def test_apply_transform_matches_imagedatagenerator_reference(shape, params):
    image = _smooth_image(*shape[:2], channels=shape[2] if len(shape) == 3 else None)
    expected = _reference_transform(image, **params)
    actual = apply_transform(image, **params)
    assert actual.shape == image.shape and actual.dtype == np.uint8
    # OpenCV interpolates with 1/32-pixel fixed-point weights: a grey level or two.
    np.testing.assert_allclose(actual, expected, atol=2.5)


def test_affine_matrix_is_identity_without_transform():
    np.testing.assert_allclose(affine_matrix(48, 48), np.eye(3), atol=1e-12)


def test_brightness_multiplies_pixels():
    image = _smooth_image(9, 7)
    np.testing.assert_array_equal(apply_transform(image, brightness=0.5),
                                  np.clip(np.rint(image * 0.5), 0, 255).astype(np.uint8))


def test_offline_augmentation_samples_in_the_paper_ranges():
    aug = OfflineAugmentation()
    rng = np.random.default_rng(0)
    draws = [aug.sample(rng, 48, 40) for _ in range(2000)]
    get = lambda k: np.array([d[k] for d in draws])  # noqa: E731
    assert -10 <= get("theta").min() < -9 and 9 < get("theta").max() <= 10
    assert abs(get("tx")).max() <= 0.2 * 48 and abs(get("tx")).max() > 0.19 * 48
    assert abs(get("ty")).max() <= 0.2 * 40 and abs(get("ty")).max() > 0.19 * 40
    for k in ("zx", "zy"):
        assert 0.4 <= get(k).min() < 0.42 and 1.58 < get(k).max() <= 1.6
    assert not np.allclose(get("zx"), get("zy"))  # independent axes, as ImageDataGenerator
    assert 0.2 <= get("brightness").min() and get("brightness").max() <= 0.6


def test_offline_augmentation_identity_and_shapes():
    ident = OfflineAugmentation(zoom=0, rotation=0, width_shift=0, height_shift=0, brightness=None)
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (5, 7), (5, 7, 1), (6, 4, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_array_equal(ident(image, rng), image)
        assert OfflineAugmentation()(image, rng).shape == shape


@pytest.mark.parametrize("kwargs, match", [
    ({"zoom": 1.0}, "zoom must be < 1"),
    ({"rotation": -1}, "rotation must be a number >= 0, got -1"),
    ({"width_shift": "a"}, "width_shift"),
    ({"brightness": (0.6, 0.2)}, "brightness"),
])
def test_offline_augmentation_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OfflineAugmentation(**kwargs)


def test_apply_transform_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"shape \(H, W\)"):
        apply_transform(np.zeros((2, 2, 2, 2), np.uint8), theta=3.0)
