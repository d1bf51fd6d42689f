"""Train/test splits as index arrays: official, subject-independent, and (opt-in) random.

Every function returns sorted ``int64`` index arrays into ``dataset.records`` and is
deterministic given ``seed``. ``folds`` are lists of ``(train_idx, test_idx)``;
``fold_datasets`` turns them into ``FERDataset`` pairs.

Subject-independent protocols (``subject_kfold``, ``leave_one_subject_out``) never put a
subject on both sides: FER datasets hold several pictures per person (CK+48: three frames of
each sequence; JAFFE: 3-4 takes per expression per poser), and a model that has seen a face
recognises the person rather than the expression. ``random_split`` / ``random_kfold`` are the
papers' protocol (SPEC 001) and are kept as an explicit opt-in, with that warning.
"""

import collections

import numpy as np

from keras_fer.validation import check_int


def _rng(seed):
    return np.random.default_rng(seed)


def _labels(dataset):
    labels = np.array([r.label for r in dataset.records], dtype=object)
    if any(label is None for label in labels):
        raise ValueError("dataset has records without a label; splits need labels")
    return labels.astype(np.int64)


def _subjects(dataset):
    subjects = [r.subject for r in dataset.records]
    missing = sum(s is None for s in subjects)
    if missing:
        raise ValueError(f"dataset {dataset.name!r} has {missing} records without a subject id: "
                         "subject-independent splits need one per record (CK+48, JAFFE have "
                         "them; use random_split for datasets without)")
    return np.array(subjects, dtype=object)


def official_split(dataset, split):
    """Indices of the records whose ``split`` is ``split`` (or any of a list of splits)."""
    wanted = [split] if isinstance(split, str) or split is None else list(split)
    names = dataset.split_names()
    unknown = [s for s in wanted if s not in names]
    if unknown:
        raise ValueError(f"split must be one of the dataset's splits {names}, got {unknown}")
    return np.flatnonzero(np.isin(np.array([r.split for r in dataset.records], dtype=object),
                                  np.array(wanted, dtype=object)))


def subject_kfold(dataset, k, seed=0, stratify=True):
    """``k`` folds with each subject in exactly one test fold, label-balanced as far as
    subjects allow.

    Greedy assignment: subjects are shuffled with ``seed`` and then taken largest first
    (a stable sort, so the shuffle breaks ties); each goes to the fold where it least
    increases the spread of the per-class counts across folds (the sum over classes of the
    squared fold counts, each class scaled by its total so that rare classes count as much
    as common ones), ties going to the fold with fewer samples, then the lower index. An
    empty fold is always among the cheapest, so no fold is empty when ``k <= subjects``.
    ``stratify=False`` balances fold sizes only.

    Returns ``[(train_idx, test_idx)] * k``.
    """
    k = check_int(k, "k", 2)
    subjects = _subjects(dataset)
    labels = _labels(dataset)
    unique = sorted(set(subjects))
    if k > len(unique):
        raise ValueError(f"k must be <= the number of subjects ({len(unique)}), got {k}")
    num_classes = max(len(dataset.classes), int(labels.max()) + 1 if len(labels) else 0)
    index_of = {s: i for i, s in enumerate(unique)}
    subject_ids = np.array([index_of[s] for s in subjects])
    counts = np.zeros((len(unique), num_classes))
    np.add.at(counts, (subject_ids, labels), 1)
    if not stratify:
        counts = counts.sum(axis=1, keepdims=True)
    weights = 1.0 / np.maximum(counts.sum(axis=0), 1)

    order = _rng(seed).permutation(len(unique))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    fold_counts = np.zeros((k, counts.shape[1]))
    assignment = np.empty(len(unique), dtype=np.int64)
    for s in order:
        # Increase of sum_c w_c * x_fc^2 when subject s joins fold f.
        cost = ((2 * fold_counts * counts[s] + counts[s] ** 2) * weights).sum(axis=1)
        sizes = fold_counts.sum(axis=1)
        fold = min(range(k), key=lambda f: (round(cost[f], 12), sizes[f], f))
        assignment[s] = fold
        fold_counts[fold] += counts[s]
    record_fold = assignment[subject_ids]
    return [(np.flatnonzero(record_fold != f), np.flatnonzero(record_fold == f))
            for f in range(k)]


def leave_one_subject_out(dataset):
    """One fold per subject, in sorted subject order: ``[(train_idx, test_idx)]``.

    ``subject_names(dataset)`` gives the matching subject of each fold.
    """
    subjects = _subjects(dataset)
    return [(np.flatnonzero(subjects != s), np.flatnonzero(subjects == s))
            for s in subject_names(dataset)]


def subject_names(dataset):
    """Sorted distinct subject ids (the fold order of ``leave_one_subject_out``)."""
    return sorted(set(_subjects(dataset)))


def _allocate(n, fractions):
    """Largest-remainder split of ``n`` items into parts proportional to ``fractions``."""
    exact = np.asarray(fractions) * n
    sizes = np.floor(exact).astype(np.int64)
    remainder = exact - sizes
    for i in np.argsort(-remainder, kind="stable")[:n - sizes.sum()]:
        sizes[i] += 1
    return sizes


def _check_fractions(fractions):
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or len(fractions) < 2 or np.any(fractions <= 0):
        raise ValueError(f"fractions must be two or more positive numbers, got "
                         f"{fractions.tolist()}")
    if abs(fractions.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions.tolist()} "
                         f"(sum {fractions.sum():g})")
    return fractions


def random_split(dataset, fractions=(0.8, 0.2), seed=0, stratify=True):
    """Random parts of sizes ``fractions`` (e.g. ``(0.8, 0.1, 0.1)``); one index array each.

    WARNING: this is the papers' protocol, not a sound one for CK+48 or JAFFE. CK+48 holds
    the last three frames of every sequence, so a random split puts near-identical frames of
    one sequence on both sides (and JAFFE several takes per poser): test accuracy then
    measures recall of seen faces. Use ``subject_kfold`` for a subject-independent estimate
    and report both.

    With ``stratify`` each class is split in the same proportions (largest remainder per
    class).
    """
    fractions = _check_fractions(fractions)
    labels = _labels(dataset) if stratify else np.zeros(len(dataset), np.int64)
    rng = _rng(seed)
    parts = [[] for _ in fractions]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        bounds = np.cumsum(_allocate(len(members), fractions))[:-1]
        for part, chunk in zip(parts, np.split(members, bounds)):
            part.append(chunk)
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64)
                 for p in parts)


def random_kfold(dataset, k, seed=0, stratify=True):
    """``k`` random (optionally stratified) folds: ``[(train_idx, test_idx)]``.

    Same warning as ``random_split``: on CK+48 / JAFFE the folds share subjects.
    """
    k = check_int(k, "k", 2)
    if k > len(dataset):
        raise ValueError(f"k must be <= the number of records ({len(dataset)}), got {k}")
    parts = random_split(dataset, np.full(k, 1.0 / k), seed=seed, stratify=stratify)
    everything = np.arange(len(dataset))
    return [(np.setdiff1d(everything, test), test) for test in parts]


def check_subject_independent(dataset, train_idx, test_idx):
    """Raises ``ValueError`` naming the subjects found on both sides of a split."""
    subjects = _subjects(dataset)
    shared = set(subjects[np.asarray(train_idx, dtype=np.int64)]) & set(
        subjects[np.asarray(test_idx, dtype=np.int64)])
    if shared:
        raise ValueError(f"{len(shared)} subject(s) on both sides of the split: "
                         f"{sorted(shared)[:10]}")


def fold_datasets(dataset, folds):
    """``[(train FERDataset, test FERDataset)]`` for ``[(train_idx, test_idx)]``."""
    return [(dataset.subset(tr, f"{dataset.name}[fold {i} train]"),
             dataset.subset(te, f"{dataset.name}[fold {i} test]"))
            for i, (tr, te) in enumerate(folds)]


def fold_class_counts(dataset, folds):
    """Per fold, ``{class: test count}``: to check how balanced the folds came out."""
    labels = _labels(dataset)
    out = []
    for _, test in folds:
        counts = collections.Counter(labels[test].tolist())
        out.append({c: counts.get(i, 0) for i, c in enumerate(dataset.classes)})
    return out
