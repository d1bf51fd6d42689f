"""Dataset readers on tiny fixtures written in the real formats (no real data used)."""

import logging
import os

import numpy as np
import pytest
from PIL import Image

import keras_fer.datasets as kd
from keras_fer.datasets import readers
from keras_fer.datasets.readers import base
from keras_fer.datasets.readers.ferplus import process_votes
from keras_fer.labels import EMOTIONS

from datasets_fixtures import (ckplus_items, face, fer2013_rows, pixels_text, truncate_file,
                               write_bytes, write_ckplus_tree, write_fer2013_csv,
                               write_ferplus_csv, write_ferplus_folder, write_image,
                               write_image_folder, write_jaffe_tree, write_mnist_npz)

IDX = {name: i for i, name in enumerate(EMOTIONS)}


@pytest.fixture(autouse=True)
def _seed():
    """Overrides the conftest fixture: these tests build no Keras state, and its per-test
    ``clear_session`` costs about a second each."""
    yield


# ----------------------------------------------------------------------------- FER2013 csv

FER_SPEC = [("Training", 0), ("Training", 3), ("Training", 6), ("PublicTest", 5),
            ("PublicTest", 1), ("PrivateTest", 4), ("Training", 2)]


@pytest.mark.parametrize("name", ["fer2013.csv", "fer2013.csv.gz"])
def test_fer2013_csv_labels_pixels_splits(tmp_path, name):
    rows = fer2013_rows(FER_SPEC)
    path = write_fer2013_csv(str(tmp_path / name), rows)
    ds = kd.load("fer2013", path)
    assert ds.classes == EMOTIONS[:7]
    assert len(ds) == 7
    # FER2013 codes are already the canonical order.
    assert [r.label for r in ds] == [code for _, code in FER_SPEC]
    assert [r.split for r in ds] == [u for u, _ in FER_SPEC]
    for r, (_, pixels, _) in zip(ds, rows):
        assert r.image.shape == (48, 48) and r.image.dtype == np.uint8
        np.testing.assert_array_equal(r.image, pixels)
    assert ds[2].source == f"{name}:row 2" and ds[2].meta["row"] == 2
    # Folder root finds the csv too.
    assert len(kd.load("fer2013", str(tmp_path))) == 7


def test_fer2013_split_aliases_and_counts(tmp_path):
    path = write_fer2013_csv(str(tmp_path / "fer2013.csv"), fer2013_rows(FER_SPEC))
    assert len(kd.load("fer2013", path, split="Training")) == 4
    assert len(kd.load("fer2013", path, split="train")) == 4
    assert len(kd.load("fer2013", path, split="val")) == 2
    assert len(kd.load("fer2013", path, split="test")) == 1
    assert len(kd.load("fer2013", path, split=["train", "PublicTest"])) == 6
    ds = kd.load("fer2013", path, split="Training", num_classes=8)
    assert ds.classes == EMOTIONS and ds.class_counts()["contempt"] == 0
    assert ds.class_counts() == {"angry": 1, "disgust": 0, "fear": 1, "happy": 1, "sad": 0,
                                 "surprise": 0, "neutral": 1, "contempt": 0}
    with pytest.raises(ValueError, match="split must be one of"):
        kd.load("fer2013", path, split="holdout")


def test_fer2013_missing_split_is_an_error(tmp_path):
    path = write_fer2013_csv(str(tmp_path / "fer2013.csv"),
                             fer2013_rows([("Training", 0), ("PublicTest", 1)]))
    with pytest.raises(ValueError, match=r"no rows with Usage \['PrivateTest'\]"):
        kd.load("fer2013", path, split="PrivateTest")


def test_fer2013_vectorised_parse_matches_row_by_row_reference(tmp_path):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(25)]
    images[0][:] = 0
    images[1][:] = 255
    rows = [(i % 7, img, "Training") for i, img in enumerate(images)]
    path = write_fer2013_csv(str(tmp_path / "f.csv"), rows)
    # Independent reference: Python's csv-free split of each line.
    with open(path) as f:
        lines = f.read().splitlines()[1:]
    reference = np.stack([np.array([int(v) for v in ln.split(",")[1].split(" ")], np.uint8)
                          for ln in lines]).reshape(-1, 48, 48)
    table = readers.parse_fer2013_csv(path, base.ErrorPolicy("raise"))
    np.testing.assert_array_equal(table.pixels, reference)
    np.testing.assert_array_equal(table.emotion, [i % 7 for i in range(25)])


def test_fer2013_cache_round_trip(tmp_path):
    path = write_fer2013_csv(str(tmp_path / "f.csv"), fer2013_rows(FER_SPEC))
    first = kd.load("fer2013", path, cache_dir=str(tmp_path / "cache"))
    assert len(os.listdir(tmp_path / "cache")) == 1
    second = kd.load("fer2013", path, cache_dir=str(tmp_path / "cache"))
    for a, b in zip(first, second):
        assert (a.label, a.split, a.source) == (b.label, b.split, b.source)
        np.testing.assert_array_equal(a.image, b.image)


def test_fer2013_cache_is_keyed_on_content(tmp_path):
    # An edited csv whose size and mtime are restored must not return the old labels.
    path = write_fer2013_csv(str(tmp_path / "f.csv"), fer2013_rows(FER_SPEC))
    cache = str(tmp_path / "cache")
    assert kd.load("fer2013", path, cache_dir=cache)[0].label == 0
    stat = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(len("emotion,pixels,Usage\n"))
        f.write(b"1")  # row 0: angry (0) -> disgust (1), same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.path.getsize(path) == stat.st_size
    assert kd.load("fer2013", path, cache_dir=cache)[0].label == 1


def test_fer2013_corrupt_cache_is_named_and_rebuilt(tmp_path, caplog):
    path = write_fer2013_csv(str(tmp_path / "f.csv"), fer2013_rows(FER_SPEC))
    cache = tmp_path / "cache"
    first = kd.load("fer2013", path, cache_dir=str(cache))
    (cache_file,) = list(cache.iterdir())
    cache_file.write_bytes(cache_file.read_bytes()[:100])  # truncated: BadZipFile
    with caplog.at_level(logging.WARNING, logger="keras_fer.datasets"):
        again = kd.load("fer2013", path, cache_dir=str(cache))
    assert str(cache_file) in caplog.text and "rebuilding" in caplog.text
    assert [r.label for r in again] == [r.label for r in first]
    np.testing.assert_array_equal(again[3].image, first[3].image)
    # Rebuilt: the next read uses the cache again without a warning.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="keras_fer.datasets"):
        kd.load("fer2013", path, cache_dir=str(cache))
    assert "rebuilding" not in caplog.text and cache_file.stat().st_size > 100


@pytest.mark.parametrize("damage", ["truncate", "crc"])
def test_fer2013_bad_gzip_names_the_file(tmp_path, damage):
    path = write_fer2013_csv(str(tmp_path / "fer2013.csv.gz"), fer2013_rows(FER_SPEC))
    data = bytearray(open(path, "rb").read())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-8] ^= 0xFF  # the gzip trailer's CRC32
    with open(path, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(kd.DatasetError, match="fer2013.csv.gz: corrupt or truncated gzip"):
        kd.load("fer2013", path)


def test_csv_with_utf8_bom_reads(tmp_path):
    path = write_fer2013_csv(str(tmp_path / "f.csv"), fer2013_rows(FER_SPEC))
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + data)
    assert len(kd.load("fer2013", path)) == len(FER_SPEC)
    from keras_fer.datasets import synthetic

    root = synthetic.write_ferplus(str(tmp_path / "plus"), per_class_train=1, per_class_test=1)
    votes = os.path.join(root, "fer2013new.csv")
    data = open(votes, "rb").read()
    with open(votes, "wb") as f:
        f.write(b"\xef\xbb\xbf" + data)
    assert len(kd.load("ferplus", root, label_mode="majority")) == 14


def test_fer2013_wrong_columns(tmp_path):
    path = write_fer2013_csv(str(tmp_path / "f.csv"), fer2013_rows(FER_SPEC[:2]),
                             header=("label", "pixels", "Usage"))
    with pytest.raises(kd.DatasetError, match=r"f.csv: header has columns \['label'"):
        kd.load("fer2013", path)
    bad = str(tmp_path / "g.csv")
    with open(bad, "w") as f:
        f.write("emotion,pixels,Usage\n0,1 2 3\n")
    with pytest.raises(kd.DatasetError, match=r"g.csv:row 0 \(line 2\): has 2 fields"):
        kd.load("fer2013", bad)


@pytest.mark.parametrize("pixels, problem", [
    (" ".join(["7"] * 2303), "pixels has 2303 values, expected 2304"),
    (" ".join(["7"] * 2305), "pixels has 2305 values, expected 2304"),
    (" ".join(["7"] * 2303 + ["x"]), "non-numeric value 'x'"),
    (" ".join(["7"] * 2303 + ["1.5"]), "non-numeric value '1.5'"),
    (" ".join(["7"] * 2303 + ["300"]), "pixel value 300 is out of range"),
    ("", "pixels has 0 values"),
])
def test_fer2013_bad_pixel_rows(tmp_path, pixels, problem, caplog):
    rows = fer2013_rows(FER_SPEC[:3])
    rows.insert(1, (4, pixels, "Training"))
    path = write_fer2013_csv(str(tmp_path / "fer2013.csv"), rows)
    with pytest.raises(kd.DatasetError, match=rf"fer2013.csv:row 1 \(line 3\): .*{problem}"):
        kd.load("fer2013", path)
    with caplog.at_level(logging.WARNING, logger="keras_fer.datasets"):
        ds = kd.load("fer2013", path, on_error="skip")
    assert len(ds) == 3 and len(ds.skipped) == 1
    assert ds.skipped[0][0].startswith("fer2013.csv:row 1") and problem in ds.skipped[0][1]
    assert "skipping fer2013.csv:row 1" in caplog.text
    # The rows around the bad one keep their own pixels and labels.
    assert [r.meta["row"] for r in ds] == [0, 2, 3]
    for r, original in zip(ds, [rows[0], rows[2], rows[3]]):
        np.testing.assert_array_equal(r.image, original[1])
        assert r.label == original[0]
    assert "skipped: 1" in ds.summary()


@pytest.mark.parametrize("line, problem", [
    ("7,{p},Training", "emotion '7' is not a FER2013 code"),
    ("x,{p},Training", "emotion 'x' is not a FER2013 code"),
    ("3,{p},Holdout", "Usage 'Holdout' is not one of"),
])
def test_fer2013_bad_label_or_usage(tmp_path, line, problem):
    path = str(tmp_path / "fer2013.csv")
    p = pixels_text(face(1))
    with open(path, "w") as f:
        f.write("emotion,pixels,Usage\n" + f"0,{p},Training\n" + line.format(p=p) + "\n")
    with pytest.raises(kd.DatasetError, match=rf"row 1 \(line 3\): {problem}"):
        kd.load("fer2013", path)
    ds = kd.load("fer2013", path, on_error="skip")
    assert len(ds) == 1 and len(ds.skipped) == 1


def test_fer2013_jpg_folders(tmp_path):
    root = tmp_path / "fer"
    write_image_folder(str(root / "train"), {"angry": 2, "neutral": 1, "surprise": 1}, ext="jpg",
                       size=(48, 48))
    write_image_folder(str(root / "test"), {"happy": 1, "sad": 2}, ext="jpg", size=(48, 48))
    ds = kd.load("fer2013", str(root))
    assert len(ds) == 7 and ds.info["layout"] == "folders"
    assert ds.class_counts() == {"angry": 2, "disgust": 0, "fear": 0, "happy": 1, "sad": 2,
                                 "surprise": 1, "neutral": 1}
    train = kd.load("fer2013", str(root), split="Training")
    assert {r.split for r in train} == {"train"} and len(train) == 4
    assert all(r.path and r.image is None for r in train)
    assert [EMOTIONS[r.label] for r in train] == ["angry", "angry", "neutral", "surprise"]


# ------------------------------------------------------------------------------- FERPlus

# Hand-worked cases of FERPlus's rules (votes in FERPlus column order: neutral, happiness,
# surprise, sadness, anger, disgust, fear, contempt, unknown, NF).
VOTE_CASES = [
    # votes, mode, expected label name or None (dropped), expected target {name: p}
    # single votes removed -> [4,0,0,0,3,2,...] sum 9: 4 is not > 4.5 -> no majority
    ((4, 0, 0, 1, 3, 2, 0, 0, 0, 0), "majority", None, None),
    # -> [6,...,2(unknown)] sum 8: 6 > 4 -> neutral
    ((6, 0, 1, 1, 0, 0, 0, 0, 2, 0), "majority", "neutral", {"neutral": 1.0}),
    ((0, 0, 0, 0, 0, 0, 0, 0, 7, 3), "majority", None, None),
    ((0, 0, 0, 0, 0, 0, 0, 8, 2, 0), "majority", "contempt", {"contempt": 1.0}),
    # five-way tie: nobody has a majority; probability takes all five (> 3) -> dropped
    ((2, 2, 2, 2, 2, 0, 0, 0, 0, 0), "majority", None, None),
    ((2, 2, 2, 2, 2, 0, 0, 0, 0, 0), "probability", None, None),
    # 5 is not > 5 -> no majority; probability: 5 then 3 reach 8 >= 7.5 -> 5/8, 3/8
    ((5, 3, 0, 0, 0, 0, 0, 0, 2, 0), "majority", None, None),
    ((5, 3, 0, 0, 0, 0, 0, 0, 2, 0), "probability", "neutral", {"neutral": 5 / 8,
                                                                  "happy": 3 / 8}),
    ((5, 3, 0, 0, 0, 0, 0, 0, 2, 0), "crossentropy", "neutral", {"neutral": 5 / 8,
                                                                   "happy": 3 / 8}),
    # unknown reached after neutral: dropped from the target; 6 > 5 keeps the image
    ((6, 0, 0, 0, 0, 0, 0, 0, 2, 2), "probability", "neutral", {"neutral": 1.0}),
    # unknown is the top vote: the image is unknown
    ((3, 3, 0, 0, 0, 0, 0, 0, 4, 0), "probability", None, None),
    # tie on top: both taken; the label is the first in FERPlus order (neutral, not happy)
    ((4, 4, 2, 0, 0, 0, 0, 0, 0, 0), "probability", "neutral", {"neutral": 0.5, "happy": 0.5}),
    # multi-target: every emotion with >= 30% of the votes
    ((4, 4, 0, 0, 2, 0, 0, 0, 0, 0), "multi_target", "neutral", {"neutral": 0.5,
                                                                   "happy": 0.5}),
    ((4, 2, 2, 2, 0, 0, 0, 0, 0, 0), "multi_target", None, None),
]


@pytest.mark.parametrize("votes, mode, label, target", VOTE_CASES)
def test_ferplus_vote_rules(votes, mode, label, target):
    from keras_fer.datasets.readers.ferplus import ferplus_label, to_canonical

    index, vector = ferplus_label(votes, mode)
    if label is None:
        assert index is None
        assert process_votes(votes, mode)[8:].sum() == pytest.approx(1.0)
        return
    from keras_fer.datasets.readers.ferplus import FERPLUS_TO_CANONICAL

    assert FERPLUS_TO_CANONICAL[index] == IDX[label]
    expected = np.zeros(8)
    for name, p in target.items():
        expected[IDX[name]] = p
    np.testing.assert_allclose(to_canonical(vector), expected, atol=1e-7)


def _ferplus_fixture(tmp_path, votes_rows, usages=None, names=None, fer_dir=None):
    n = len(votes_rows)
    usages = usages or ["Training"] * n
    fer_dir = fer_dir or tmp_path
    rows = [(i % 7, face(i), usages[i]) for i in range(n)]
    write_fer2013_csv(str(fer_dir / "fer2013.csv"), rows)
    names = names or [f"fer{i:07d}.png" for i in range(n)]
    write_ferplus_csv(str(tmp_path / "fer2013new.csv"),
                      [(usages[i], names[i], votes_rows[i]) for i in range(n)])
    return rows


def test_ferplus_csv_join(tmp_path):
    votes = [v for v, mode, *_ in VOTE_CASES if mode == "majority"]
    rows = _ferplus_fixture(tmp_path, votes)
    ds = kd.load("ferplus", str(tmp_path))
    assert ds.classes == EMOTIONS
    # majority keeps rows 1 (neutral) and 3 (contempt) only
    assert [r.meta["row"] for r in ds] == [1, 3]
    assert [r.label for r in ds] == [IDX["neutral"], IDX["contempt"]]
    np.testing.assert_array_equal(ds[0].image, rows[1][1])  # pixels from fer2013.csv row 1
    # default distribution: raw vote shares of the 8 emotions, canonical order
    expected = np.zeros(8)
    expected[[IDX["neutral"], IDX["surprise"], IDX["sad"]]] = [6 / 8, 1 / 8, 1 / 8]
    np.testing.assert_allclose(ds[0].distribution, expected, atol=1e-7)
    assert ds[0].meta["votes"] == (6, 0, 1, 1, 0, 0, 0, 0, 2, 0)
    assert ds.info["excluded"] == {
        "no emotion under FERPlus 'majority' rules (unknown / not a face / no majority)": 4}
    assert ds[1].source == "fer2013new.csv:row 3"


def test_ferplus_modes_distribution_and_7_classes(tmp_path):
    votes = [(5, 3, 0, 0, 0, 0, 0, 0, 2, 0), (0, 0, 0, 0, 0, 0, 0, 8, 2, 0),
             (0, 1, 0, 0, 0, 0, 0, 0, 0, 9), (6, 0, 1, 1, 0, 0, 0, 0, 2, 0)]
    _ferplus_fixture(tmp_path, votes)
    ds = kd.load("ferplus", str(tmp_path), label_mode="crossentropy", distribution="target")
    assert [r.meta["row"] for r in ds] == [0, 1, 3]
    np.testing.assert_allclose(ds[0].distribution[[IDX["neutral"], IDX["happy"]]],
                               [5 / 8, 3 / 8], atol=1e-7)
    seven = kd.load("ferplus", str(tmp_path), label_mode="crossentropy", num_classes=7)
    assert seven.classes == EMOTIONS[:7]
    assert [r.meta["row"] for r in seven] == [0, 3]
    assert seven.info["excluded"]["contempt (not in the 7-class view)"] == 1
    assert seven[0].distribution.shape == (7,)
    with pytest.raises(ValueError, match="label_mode must be one of"):
        kd.load("ferplus", str(tmp_path), label_mode="vote")
    with pytest.raises(ValueError, match="distribution must be one of"):
        kd.load("ferplus", str(tmp_path), distribution="soft")


def test_ferplus_empty_image_name_and_split(tmp_path):
    votes = [(10, 0, 0, 0, 0, 0, 0, 0, 0, 0)] * 4
    usages = ["Training", "Training", "PublicTest", "PublicTest"]
    names = ["fer0000000.png", "", "fer0000001.png", "fer0000002.png"]
    _ferplus_fixture(tmp_path, votes, usages, names)
    ds = kd.load("ferplus", str(tmp_path))
    assert [r.meta["row"] for r in ds] == [0, 2, 3]
    assert ds.info["excluded"] == {"empty Image name (image dropped by FERPlus)": 1}
    assert "excluded by rule: 1 (empty Image name" in ds.summary()
    val = kd.load("ferplus", str(tmp_path), split="val")
    assert [r.split for r in val] == ["PublicTest", "PublicTest"]


def test_ferplus_finds_fer2013_in_sibling_folder(tmp_path):
    (tmp_path / "ferplus").mkdir()
    (tmp_path / "fer2013").mkdir()
    _ferplus_fixture(tmp_path / "ferplus", [(10, 0, 0, 0, 0, 0, 0, 0, 0, 0)] * 2,
                     fer_dir=tmp_path / "fer2013")
    ds = kd.load("ferplus", str(tmp_path / "ferplus" / "fer2013new.csv"))
    assert len(ds) == 2 and ds.info["pixels"].endswith(os.path.join("fer2013", "fer2013.csv"))


def test_ferplus_row_count_mismatch(tmp_path):
    _ferplus_fixture(tmp_path, [(10, 0, 0, 0, 0, 0, 0, 0, 0, 0)] * 3)
    write_fer2013_csv(str(tmp_path / "fer2013.csv"), fer2013_rows([("Training", 0)] * 2))
    with pytest.raises(kd.DatasetError, match=r"fer2013new.csv has 3 rows but .*fer2013.csv "
                                              r"has 2"):
        kd.load("ferplus", str(tmp_path), on_error="skip")


def test_ferplus_usage_mismatch_and_bad_votes(tmp_path):
    votes = [(10, 0, 0, 0, 0, 0, 0, 0, 0, 0)] * 3
    _ferplus_fixture(tmp_path, votes)
    write_ferplus_csv(str(tmp_path / "fer2013new.csv"), [
        ("Training", "fer0000000.png", votes[0]),
        ("PublicTest", "fer0000001.png", votes[1]),
        ("Training", "fer0000002.png", ("ten",) + votes[2][1:])])
    with pytest.raises(kd.DatasetError, match=r"row 1 \(line 3\): Usage 'PublicTest' differs "
                                              r"from fer2013.csv:row 1 Usage 'Training'"):
        kd.load("ferplus", str(tmp_path))
    ds = kd.load("ferplus", str(tmp_path), on_error="skip")
    assert len(ds) == 1 and len(ds.skipped) == 2
    assert "vote counts must be integers" in ds.skipped[1][1]


def test_ferplus_wrong_header(tmp_path):
    _ferplus_fixture(tmp_path, [(10, 0, 0, 0, 0, 0, 0, 0, 0, 0)])
    with open(tmp_path / "fer2013new.csv", "w") as f:
        f.write("Usage,neutral\nTraining,10\n")
    with pytest.raises(kd.DatasetError, match="header has columns"):
        kd.load("ferplus", str(tmp_path))


def test_ferplus_folder_layout(tmp_path):
    root = tmp_path / "data"
    write_ferplus_folder(str(root / "FER2013Train"), [
        ("fer0000000.png", (0, 9, 1, 0, 0, 0, 0, 0, 0, 0)),
        ("fer0000001.png", (0, 0, 0, 0, 0, 0, 0, 0, 3, 7))])
    write_ferplus_folder(str(root / "FER2013Valid"), [
        ("fer0000005.png", (1, 0, 0, 0, 9, 0, 0, 0, 0, 0))])
    ds = kd.load("ferplus", str(tmp_path), layout="folders")
    assert [(r.split, EMOTIONS[r.label]) for r in ds] == [("Training", "happy"),
                                                         ("PublicTest", "angry")]
    assert ds[0].path.endswith("fer0000000.png") and ds[0].meta["box"] == "(0, 0, 48, 48)"
    assert len(kd.load("ferplus", str(root), split="PublicTest")) == 1
    with pytest.raises(FileNotFoundError, match="FER2013Test/label.csv does not exist"):
        kd.load("ferplus", str(root), split="PrivateTest")
    write_ferplus_folder(str(tmp_path / "nopng" / "FER2013Train"),
                         [("fer0000000.png", (10, 0, 0, 0, 0, 0, 0, 0, 0, 0))],
                         write_images=False)
    with pytest.raises(FileNotFoundError, match="has label.csv but no PNG images"):
        kd.load("ferplus", str(tmp_path / "nopng"))


def test_ferplus_folder_missing_png_is_named(tmp_path):
    folder = str(tmp_path / "FER2013Train")
    write_ferplus_folder(folder, [("fer0000000.png", (10, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
                                  ("fer0000001.png", (10, 0, 0, 0, 0, 0, 0, 0, 0, 0))])
    os.remove(os.path.join(folder, "fer0000001.png"))
    with pytest.raises(kd.ImageReadError, match="fer0000001.png: file does not exist"):
        kd.load("ferplus", str(tmp_path))
    ds = kd.load("ferplus", str(tmp_path), on_error="skip")
    assert len(ds) == 1 and len(ds.skipped) == 1


# -------------------------------------------------------------------------------- CK+48


def test_ckplus48_labels_subjects_sequences(tmp_path):
    items = ckplus_items([5, 10, 11], folders=("anger", "contempt", "sadness")) + [
        ("happy", 10, 7, 4)]
    base_dir = write_ckplus_tree(str(tmp_path), items)
    ds = kd.load("ckplus48", str(tmp_path), num_classes=8)
    assert ds.classes == EMOTIONS and len(ds) == 28
    assert ds.class_counts() == {"angry": 9, "disgust": 0, "fear": 0, "happy": 1, "sad": 9,
                                 "surprise": 0, "neutral": 0, "contempt": 9}
    assert sorted({r.subject for r in ds}) == ["S005", "S010", "S011"]
    happy = [r for r in ds if r.label == IDX["happy"]][0]
    assert happy.subject == "S010" and happy.meta == {"sequence": "S010_007", "frame": 4}
    assert len(kd.load("ckplus48", base_dir)) == 28  # the CK+48 folder itself
    seven = kd.load("ckplus48", str(tmp_path), num_classes=7)
    assert len(seven) == 19 and seven.info["excluded"] == {
        "contempt (not in the 7-class view)": 9}
    own = ds.select_classes(["angry", "contempt", "happy", "sad"])
    assert own.classes == ("angry", "contempt", "happy", "sad") and len(own) == 28
    assert {own.classes[r.label] for r in own if r.subject == "S010"} == set(own.classes)


def test_ckplus48_carries_its_own_seven_classes(tmp_path):
    # CK+48 has no neutral folder: the default view must not invent an empty neutral class
    # (a model trained on it would get an output that was never trained).
    write_ckplus_tree(str(tmp_path), ckplus_items([5], folders=("anger", "contempt", "happy")))
    ds = kd.load("ckplus48", str(tmp_path))
    assert ds.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")
    assert "neutral" not in ds.classes and ds.num_classes == 7
    assert ds.class_counts()["contempt"] == 3
    assert {ds.classes[r.label] for r in ds} == {"angry", "contempt", "happy"}
    # The zoo's CK+48 entries name their outputs the same way.
    from keras_fer.zoo.registry import describe

    for name in ("mini_xception.ckplus48", "resnet18_hfc.ckplus48"):
        assert tuple(describe(name).class_names) == ds.classes


def test_class_folder_replaced_by_a_file_is_not_silently_dropped(tmp_path):
    base_dir = write_ckplus_tree(str(tmp_path), ckplus_items([5, 6], folders=("anger", "happy")))
    happy = os.path.join(base_dir, "happy")
    for name in os.listdir(happy):
        os.remove(os.path.join(happy, name))
    os.rmdir(happy)
    write_bytes(happy, b"not a folder")
    with pytest.raises(kd.DatasetError, match="happy: is a file where the class folder"):
        kd.load("ckplus48", str(tmp_path))
    skipped = kd.load("ckplus48", str(tmp_path), on_error="skip")
    assert len(skipped) == 6 and skipped.skipped[0][0] == happy


def test_ckplus48_bad_name_and_split(tmp_path):
    write_ckplus_tree(str(tmp_path), ckplus_items([1]))
    write_image(str(tmp_path / "CK+48" / "happy" / "frame1.png"), face(0))
    with pytest.raises(kd.DatasetError, match="frame1.png: file name does not follow"):
        kd.load("ckplus48", str(tmp_path))
    assert len(kd.load("ckplus48", str(tmp_path), on_error="skip").skipped) == 1
    with pytest.raises(ValueError, match="split must be None for CK\\+48"):
        kd.load("ckplus48", str(tmp_path), split="train")


# --------------------------------------------------------------------------------- JAFFE

JAFFE_ITEMS = [("KM", "AN", 1, 17), ("KM", "NE", 1, 1), ("KL", "HA", 2, 159),
               ("KL", "SU", 1, 164), ("YM", "FE", 3, 60), ("YM", "DI", 1, 55),
               ("YM", "SA", 2, 48)]


def test_jaffe_labels_posers_palette(tmp_path):
    write_jaffe_tree(str(tmp_path), JAFFE_ITEMS, palette=(159,))
    ds = kd.load("jaffe", str(tmp_path))
    assert ds.classes == EMOTIONS[:7] and len(ds) == 7
    by_number = {r.meta["number"]: r for r in ds}
    assert EMOTIONS[by_number[17].label] == "angry" and by_number[17].subject == "KM"
    assert EMOTIONS[by_number[60].label] == "fear" and by_number[60].meta["take"] == 3
    assert {r.subject for r in ds} == {"KM", "KL", "YM"}
    palette = by_number[159].path
    with Image.open(palette) as img:
        assert img.mode == "P"
    assert kd.read_image(palette).shape == (64, 64)  # read as grey
    assert ds[0].distribution is None


def test_jaffe_ratings_distribution(tmp_path):
    ratings = {17: ((1.5, 1.0, 1.0, 4.0, 2.5, 1.0), "KM-AN1"),   # HAP SAD SUR ANG DIS FEA
               1: ((1.0, 1.0, 1.0, 1.0, 1.0, 1.0), "KM-NE1"),    # all "not at all"
               99: ((2, 2, 2, 2, 2, 2), "XX-NE1")}               # extra rows are fine
    write_jaffe_tree(str(tmp_path), JAFFE_ITEMS[:2], ratings=ratings)
    ds = kd.load("jaffe", str(tmp_path), ratings=True)
    angry = [r for r in ds if r.meta["number"] == 17][0]
    # excess over 1: happy 0.5, angry 3.0, disgust 1.5 -> / 5
    expected = np.zeros(7)
    expected[[IDX["happy"], IDX["angry"], IDX["disgust"]]] = [0.1, 0.6, 0.3]
    np.testing.assert_allclose(angry.distribution, expected, atol=1e-7)
    assert angry.meta["ratings"]["ANG"] == 4.0
    neutral = [r for r in ds if r.meta["number"] == 1][0]
    np.testing.assert_array_equal(neutral.distribution, np.eye(7)[IDX["neutral"]])


def test_jaffe_ratings_mismatch_and_unknown_code(tmp_path):
    write_jaffe_tree(str(tmp_path), JAFFE_ITEMS[:2],
                     ratings={17: ((1, 1, 1, 5, 1, 1), "KM-DI1"),
                              1: ((1, 1, 1, 1, 1, 1), "KM-NE1")})
    with pytest.raises(kd.DatasetError, match=r"KM.AN1.17.tiff: .* row 17 is 'KM-DI1', "
                                              r"expected 'KM-AN1'"):
        kd.load("jaffe", str(tmp_path), ratings=True)
    write_jaffe_tree(str(tmp_path / "j2"), [("KM", "XX", 1, 3), ("KM", "HA", 1, 4)])
    with pytest.raises(kd.DatasetError, match=r"KM.XX1.3.tiff: unknown expression code 'XX'"):
        kd.load("jaffe", str(tmp_path / "j2"))
    ds = kd.load("jaffe", str(tmp_path / "j2"), on_error="skip")
    assert len(ds) == 1 and "unknown expression code" in ds.skipped[0][1]


# -------------------------------------------------------------------------- image folder


def test_image_folder_canonical_aliases_and_extension(tmp_path):
    write_image_folder(str(tmp_path), {"anger": 1, "happiness": 2, "Neutral": 1,
                                       "eyes_shut": 2})
    with pytest.raises(kd.DatasetError, match="unknown label folder 'eyes_shut'"):
        kd.load("image_folder", str(tmp_path))
    ds = kd.load("image_folder", str(tmp_path), label_map={"eyes_shut": "closed_eyes"},
                 extra_classes=("closed_eyes",))
    assert ds.classes == EMOTIONS + ("closed_eyes",)
    assert ds.class_counts()["closed_eyes"] == 2 and ds.class_counts()["happy"] == 2
    assert ds.class_counts()["neutral"] == 1 and ds.class_counts()["angry"] == 1
    with pytest.raises(ValueError, match="'hapy', which is neither a canonical emotion"):
        kd.load("image_folder", str(tmp_path), label_map={"eyes_shut": "hapy"})
    with pytest.raises(ValueError, match="num_classes must be 8"):
        kd.load("image_folder", str(tmp_path), label_map={"eyes_shut": "closed_eyes"},
                extra_classes=("closed_eyes",), num_classes=7)
    dropped = kd.load("image_folder", str(tmp_path), label_map={"eyes_shut": None})
    assert dropped.classes == EMOTIONS[:7] and len(dropped) == 4
    assert dropped.info["excluded"] == {"folder 'eyes_shut' dropped by label_map": 2}


def test_image_folder_presets_and_splits(tmp_path):
    write_image_folder(str(tmp_path / "train"), {"0": 1, "1": 2, "7": 1, "8": 3})
    write_image_folder(str(tmp_path / "val"), {"0": 1, "6": 1})
    ds = kd.load("image_folder", str(tmp_path), label_map="affectnet")
    assert ds.classes == EMOTIONS  # contempt present -> 8 classes
    assert [(r.split, EMOTIONS[r.label]) for r in ds] == [
        ("train", "neutral"), ("train", "happy"), ("train", "happy"), ("train", "contempt"),
        ("val", "neutral"), ("val", "angry")]
    assert ds.info["excluded"] == {"folder '8' dropped by label_map": 3}
    val = kd.load("image_folder", str(tmp_path), split="val", label_map="affectnet")
    assert len(val) == 2 and val.classes == EMOTIONS[:7]
    with pytest.raises(FileNotFoundError, match="split folder .*test' does not exist"):
        kd.load("image_folder", str(tmp_path), split="test", label_map="affectnet")


def test_image_folder_empty_class_and_ignored_files(tmp_path):
    write_image_folder(str(tmp_path), {"happy": 2, "sad": 1})
    (tmp_path / "fear").mkdir()
    write_bytes(str(tmp_path / "happy" / "notes.txt"), b"hello")
    with pytest.raises(kd.DatasetError, match="fear: class folder 'fear' has no image files"):
        kd.load("image_folder", str(tmp_path))
    ds = kd.load("image_folder", str(tmp_path), on_error="skip")
    assert len(ds) == 3 and ds.skipped[0][0].endswith("fear")
    assert ds.info["ignored"] == [str(tmp_path / "happy" / "notes.txt")]
    assert "ignored non-image files: 1" in ds.summary()


# ------------------------------------------------------------------------ image problems


def _corrupt(kind, path):
    if kind == "zero-byte":
        return write_bytes(path, b"")
    if kind == "garbage":
        return write_bytes(path, b"this is not an image at all" * 10)
    write_image(path, face(3, (40, 40)))
    return truncate_file(path, 0.5)


@pytest.mark.parametrize("ext", ["png", "jpg"])
@pytest.mark.parametrize("kind, problem", [("zero-byte", "file is empty"),
                                           ("garbage", "not a readable image"),
                                           ("truncated", "truncated")])
def test_bad_image_files_are_named(tmp_path, ext, kind, problem):
    write_image_folder(str(tmp_path), {"happy": 2, "sad": 2}, ext=ext)
    bad = _corrupt(kind, str(tmp_path / "sad" / f"bad.{ext}"))
    with pytest.raises(kd.ImageReadError, match=rf"bad.{ext}: .*{problem}"):
        kd.load("image_folder", str(tmp_path))
    ds = kd.load("image_folder", str(tmp_path), on_error="skip")
    assert len(ds) == 4 and ds.skipped[0][0] == bad and problem in ds.skipped[0][1]
    # Deferred checks: the file is listed, the pipeline will name it when it reads it.
    deferred = kd.load("image_folder", str(tmp_path), validate=False)
    assert len(deferred) == 5 and deferred.info["validated"] == "none"
    assert ds.info["validated"] == "full"  # on_error="skip" decodes every file


def test_truncated_tiff_and_ckplus_zero_byte(tmp_path):
    write_jaffe_tree(str(tmp_path), JAFFE_ITEMS[:3])
    truncate_file(str(tmp_path / "images" / "KM.NE1.1.tiff"), 0.6)
    with pytest.raises(kd.ImageReadError, match="KM.NE1.1.tiff: .*truncated"):
        kd.load("jaffe", str(tmp_path))
    write_ckplus_tree(str(tmp_path / "ck"), ckplus_items([1]))
    write_bytes(str(tmp_path / "ck" / "CK+48" / "anger" / "S001_001_00000099.png"))
    with pytest.raises(kd.ImageReadError, match="S001_001_00000099.png: file is empty"):
        kd.load("ckplus48", str(tmp_path / "ck"))


def test_quick_validation_has_no_false_positives(tmp_path):
    path = write_image(str(tmp_path / "a.png"), face(1))
    with open(path, "ab") as f:  # trailing bytes after IEND: still a valid PNG
        f.write(b"\0" * 200)
    jpg = write_image(str(tmp_path / "b.jpg"), face(2))
    with open(jpg, "ab") as f:
        f.write(b"trailer" * 50)
    for p in (path, jpg):
        readers.validate_image_file(p, "quick")
        readers.validate_image_file(p, "full")
    with pytest.raises(ValueError, match="validate must be"):
        readers.validate_image_file(path, "deep")


# --------------------------------------------------------------------------------- MNIST


def test_mnist(tmp_path):
    path = write_mnist_npz(str(tmp_path / "mnist.npz"), 20, 10)
    ds = kd.load("mnist", str(tmp_path))
    assert ds.classes == tuple("0123456789") and len(ds) == 30
    assert ds.split_names() == ["train", "test"]
    test = kd.load("mnist", path, split="test")
    assert len(test) == 10 and test[3].label == 3 and test[3].image.shape == (28, 28)
    with np.load(path) as z:
        np.testing.assert_array_equal(test[3].image, z["x_test"][3])
    np.savez(str(tmp_path / "bad.npz"), x_train=np.zeros((2, 28, 28), np.uint8),
             y_train=np.array([1, 12]), x_test=np.zeros((0, 28, 28), np.uint8),
             y_test=np.zeros(0, int))
    with pytest.raises(kd.DatasetError, match=r"bad.npz:y_train\[1\]: label 12 is not a digit"):
        kd.load("mnist", str(tmp_path / "bad.npz"))


# ------------------------------------------------------------------------ the one door


@pytest.mark.parametrize("name", ["fer2013", "ferplus", "ckplus48", "jaffe", "image_folder",
                                  "mnist"])
def test_missing_root_names_the_path(tmp_path, name):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        kd.load(name, missing)


def test_registry(tmp_path, monkeypatch):
    assert kd.list_datasets() == ["ckplus48", "fer2013", "ferplus", "image_folder", "jaffe",
                                  "mnist"]
    with pytest.raises(ValueError, match="name must be one of"):
        kd.load("affectnet", str(tmp_path))
    write_image_folder(str(tmp_path), {"happy": 1})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['labelmap'\]"):
        kd.load("image_folder", str(tmp_path), labelmap={})
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        kd.load("image_folder", str(tmp_path), on_error="ignore")
    ds = kd.load("image_folder", str(tmp_path))
    calls = []
    import keras_fer.datasets.pipeline as pipeline

    monkeypatch.setattr(pipeline, "make_dataset", lambda d, **kw: calls.append((d, kw)) or "ok")
    assert ds.to_tf_dataset(batch_size=4) == "ok" and calls == [(ds, {"batch_size": 4})]


def _corrupt_one_byte(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x55  # inside the pixel data: header and tail stay intact
    with open(path, "wb") as f:
        f.write(bytes(data))


def test_one_corrupt_byte_is_skipped_with_on_error_skip(tmp_path):
    from keras_fer.datasets import synthetic

    root = synthetic.write_image_folder(str(tmp_path), per_class=2, classes=("angry", "happy"),
                                        splits=("train",))
    bad = os.path.join(root, "train", "happy", "0001.png")
    _corrupt_one_byte(bad)
    # The quick check alone lets it through (header and IEND are intact)...
    base.validate_image_file(bad, "quick")
    # ...but a reader told to skip bad files must find it, not the pipeline mid-epoch.
    ds = kd.load("image_folder", root, on_error="skip")
    assert len(ds) == 3 and [s[0] for s in ds.skipped] == [bad]
    assert sum(len(x) for x, _ in ds.to_tf_dataset(image_size=(16, 16), batch_size=4)) == 3


def test_16bit_png_is_scaled_by_257_not_stretched(tmp_path):
    from keras_fer.datasets import read_image

    values = np.array([[0, 257 * 10], [257 * 100, 257 * 128]], dtype=np.uint16)  # max 128/255
    path = str(tmp_path / "deep.png")
    Image.fromarray(values).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")
    np.testing.assert_array_equal(read_image(path), [[0, 10], [100, 128]])
