"""Classification metrics the papers report, in plain NumPy (tests compare with scikit-learn)."""

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes):
    """``cm[i, j]`` = number of samples of true class i predicted as j."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes})")
    return np.bincount(y_true * num_classes + y_pred,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_div(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def classification_metrics(y_true, y_pred, class_names):
    """Accuracy, per-class precision/recall/F1/support (per-class accuracy is the recall),
    and their macro and support-weighted averages (seed 003 reports the weighted ones).

    A class with no prediction has precision 0; with no sample, recall 0 (scikit-learn's
    ``zero_division=0``).
    """
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _safe_div(tp, cm.sum(axis=0))
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    weights = _safe_div(support, support.sum())
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]),
               "f1": float(f1[i]), "support": int(support[i]), "accuracy": float(recall[i])}
        for i, name in enumerate(class_names)}
    present = support > 0
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "num_samples": int(cm.sum()),
        "per_class": per_class,
        "macro": {"precision": float(precision[present].mean()) if present.any() else 0.0,
                  "recall": float(recall[present].mean()) if present.any() else 0.0,
                  "f1": float(f1[present].mean()) if present.any() else 0.0},
        "weighted": {"precision": float((precision * weights).sum()),
                     "recall": float((recall * weights).sum()),
                     "f1": float((f1 * weights).sum())},
        "confusion_matrix": cm.tolist(),
    }


def restricted_accuracy(scores, y_true, classes):
    """Accuracy over the samples whose label is in ``classes``, predicting among those only.

    How an 8-class FERPlus/AVFER model is scored on the 7 classes (seed 003's "7-class
    accuracy"): contempt samples are left out and the contempt logit is ignored.
    """
    scores, y_true = np.asarray(scores), np.asarray(y_true)
    classes = np.asarray(sorted(classes))
    keep = np.isin(y_true, classes)
    if not keep.any():
        raise ValueError("no sample has a label among the given classes")
    pred = classes[np.argmax(scores[keep][:, classes], axis=1)]
    return float(np.mean(pred == y_true[keep]))
