"""Splits: official, subject-independent (leak-free) and random, on hand-built datasets."""

import numpy as np
import pytest

import keras_fer.datasets as kd
from keras_fer.datasets import splits
from keras_fer.datasets.records import FERDataset, Record

from datasets_fixtures import ckplus_items, write_ckplus_tree


@pytest.fixture(autouse=True)
def _seed():
    """Overrides the conftest fixture: no Keras state here (its clear_session is slow)."""
    yield


def make_dataset(subject_labels, classes=("a", "b", "c")):
    """``subject_labels``: ``{subject: [labels]}`` -> a FERDataset of path-less records."""
    records = [Record(source=f"{s}/{i}", label=label, subject=s)
               for s, labels in subject_labels.items() for i, label in enumerate(labels)]
    return FERDataset("toy", records, classes)


def uneven_dataset(seed=0, n_subjects=23):
    rng = np.random.default_rng(seed)
    return make_dataset({f"S{i:03d}": rng.integers(0, 3, rng.integers(1, 9)).tolist()
                         for i in range(n_subjects)})


def assert_partition(folds, n):
    tests = np.concatenate([te for _, te in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(n))  # each sample in one test fold
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0
        np.testing.assert_array_equal(np.union1d(train, test), np.arange(n))


@pytest.mark.parametrize("k", [2, 5, 23])
def test_subject_kfold_is_leak_free_partition(k):
    ds = uneven_dataset()
    folds = splits.subject_kfold(ds, k, seed=1)
    assert len(folds) == k
    assert_partition(folds, len(ds))
    subjects = ds.subjects()
    for train, test in folds:
        assert len(test) > 0
        assert not set(subjects[train]) & set(subjects[test])
        splits.check_subject_independent(ds, train, test)


def test_subject_kfold_balances_classes_when_subjects_allow():
    # 10 subjects show only class a, 10 only class b (4 images each): a perfect 5-fold split
    # puts two of each in every fold.
    ds = make_dataset({**{f"A{i}": [0] * 4 for i in range(10)},
                       **{f"B{i}": [1] * 4 for i in range(10)}})
    for seed in range(5):
        counts = splits.fold_class_counts(ds, splits.subject_kfold(ds, 5, seed=seed))
        assert all(c == {"a": 8, "b": 8, "c": 0} for c in counts), counts


def test_subject_kfold_rare_class_spread():
    # The rare class c belongs to 4 subjects; with 4 folds each fold must get one of them.
    labels = {f"S{i}": [0, 1, 0, 1] for i in range(12)}
    labels.update({f"R{i}": [2, 0, 1, 0] for i in range(4)})
    ds = make_dataset(labels)
    counts = splits.fold_class_counts(ds, splits.subject_kfold(ds, 4, seed=3))
    assert [c["c"] for c in counts] == [1, 1, 1, 1]


def test_subject_kfold_deterministic_and_seeded():
    ds = uneven_dataset()
    a = splits.subject_kfold(ds, 5, seed=7)
    b = splits.subject_kfold(ds, 5, seed=7)
    for (tr1, te1), (tr2, te2) in zip(a, b):
        np.testing.assert_array_equal(te1, te2)
    many = {tuple(splits.subject_kfold(ds, 5, seed=s)[0][1]) for s in range(6)}
    assert len(many) > 1  # the seed matters


def test_subject_kfold_errors():
    ds = uneven_dataset(n_subjects=4)
    with pytest.raises(ValueError, match="k must be <= the number of subjects \\(4\\), got 5"):
        splits.subject_kfold(ds, 5)
    with pytest.raises(ValueError, match="k must be an integer >= 2, got 1"):
        splits.subject_kfold(ds, 1)
    no_subject = FERDataset("x", [Record("a", 0), Record("b", 1)], ("a", "b"))
    with pytest.raises(ValueError, match="2 records without a subject id"):
        splits.subject_kfold(no_subject, 2)


def test_leave_one_subject_out():
    ds = make_dataset({"S2": [0, 1], "S1": [2], "S3": [0, 0, 1]})
    folds = splits.leave_one_subject_out(ds)
    assert splits.subject_names(ds) == ["S1", "S2", "S3"]
    assert [te.tolist() for _, te in folds] == [[2], [0, 1], [3, 4, 5]]
    assert_partition(folds, len(ds))


def test_random_split_sizes_stratified_and_deterministic():
    ds = make_dataset({"S": [0] * 10 + [1] * 5 + [2] * 3})
    train, val, test = splits.random_split(ds, (0.6, 0.2, 0.2), seed=0)
    labels = ds.labels()
    # largest remainder per class: a 10 -> 6/2/2, b 5 -> 3/1/1, c 3 -> 1.8/.6/.6 -> 2/1/0
    assert np.bincount(labels[train], minlength=3).tolist() == [6, 3, 2]
    assert np.bincount(labels[val], minlength=3).tolist() == [2, 1, 1]
    assert np.bincount(labels[test], minlength=3).tolist() == [2, 1, 0]
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(18))
    again = splits.random_split(ds, (0.6, 0.2, 0.2), seed=0)
    np.testing.assert_array_equal(again[0], train)
    plain = splits.random_split(ds, (0.5, 0.5), seed=0, stratify=False)
    assert [len(p) for p in plain] == [9, 9]


@pytest.mark.parametrize("fractions, problem", [((0.5, 0.6), "must sum to 1"),
                                                ((1.0,), "must be two or more positive"),
                                                ((1.2, -0.2), "must be two or more positive")])
def test_random_split_bad_fractions(fractions, problem):
    with pytest.raises(ValueError, match=f"fractions {problem}"):
        splits.random_split(make_dataset({"S": [0, 1]}), fractions)


def test_random_kfold_partition():
    ds = uneven_dataset()
    folds = splits.random_kfold(ds, 4, seed=2)
    assert_partition(folds, len(ds))


def test_official_split_and_fold_datasets():
    records = [Record(f"r{i}", i % 2, split=s)
               for i, s in enumerate(["Training", "Training", "PublicTest", "Training"])]
    ds = FERDataset("fer", records, ("a", "b"))
    assert splits.official_split(ds, "Training").tolist() == [0, 1, 3]
    assert ds.split_indices()["PublicTest"].tolist() == [2]
    with pytest.raises(ValueError, match="split must be one of the dataset's splits"):
        splits.official_split(ds, "PrivateTest")
    pairs = splits.fold_datasets(ds, [(np.array([0, 1]), np.array([2, 3]))])
    train, test = pairs[0]
    assert [r.source for r in test] == ["r2", "r3"] and train.classes == ("a", "b")


def test_ckplus_random_split_leaks_but_subject_folds_do_not(tmp_path):
    write_ckplus_tree(str(tmp_path), ckplus_items(range(1, 9)))
    ds = kd.load("ckplus48", str(tmp_path))
    train, test = splits.random_split(ds, (0.8, 0.2), seed=0)
    with pytest.raises(ValueError, match="on both sides of the split"):
        splits.check_subject_independent(ds, train, test)
    for train, test in splits.subject_kfold(ds, 4, seed=0):
        splits.check_subject_independent(ds, train, test)
        sequences = lambda idx: {ds[i].meta["sequence"] for i in idx}  # noqa: E731
        assert not sequences(train) & sequences(test)
