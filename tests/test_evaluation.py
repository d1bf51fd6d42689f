"""Evaluation metrics against scikit-learn, Grad-CAM against its closed form, pictures."""

import numpy as np
import pytest

import keras

from keras_fer.evaluation import (
    classification_metrics,
    confusion_matrix,
    count_params,
    grad_cam,
    restricted_accuracy,
)
from keras_fer.evaluation import plots
from keras_fer.models import FERClassifier


def test_metrics_match_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, 300))
    y_pred[y_pred == 4] = 3  # class 4 is never predicted: zero-division path
    names = list("abcde")
    m = classification_metrics(y_true, y_pred, names)
    np.testing.assert_array_equal(m["confusion_matrix"],
                                  skm.confusion_matrix(y_true, y_pred, labels=range(5)))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=range(5),
                                                     zero_division=0)
    for i, n in enumerate(names):
        assert m["per_class"][n]["precision"] == pytest.approx(p[i])
        assert m["per_class"][n]["recall"] == pytest.approx(r[i])
        assert m["per_class"][n]["f1"] == pytest.approx(f[i])
        assert m["per_class"][n]["support"] == s[i]
    for avg in ("weighted", "macro"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=avg,
                                                         zero_division=0)
        assert (m[avg]["precision"], m[avg]["recall"], m[avg]["f1"]) == pytest.approx((p, r, f))


def test_confusion_matrix_rejects_bad_labels():
    with pytest.raises(ValueError, match="y_pred has labels outside"):
        confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix([0, 1], [0], 3)


def test_restricted_accuracy_ignores_contempt():
    scores = np.array([[0, 0, 0, 0, 0, 0, 1.0, 5.0],    # neutral beats others once contempt dropped
                       [9.0, 0, 0, 0, 0, 0, 0, 0],
                       [0, 0, 0, 0, 0, 0, 0, 9.0]])    # a contempt sample: left out
    assert restricted_accuracy(scores, [6, 1, 7], range(7)) == pytest.approx(0.5)


def test_grad_cam_equals_closed_form_for_gap_dense_head():
    inputs = keras.Input((6, 6, 1))
    feats = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    backbone = keras.Model(inputs, feats)
    model = FERClassifier(backbone, 4, mean=(0.0,), std=(1 / 255.0,))  # identity normalisation
    x = np.random.default_rng(1).uniform(0, 1, (2, 6, 6, 1)).astype("float32")
    cams, pred = grad_cam(model, x, class_index=2)
    a = backbone(x).numpy()
    w = model.get_layer("predictions").get_weights()[0]  # (3, 4)
    # d logit_2 / d A[i, j, k] = w[k, 2] / 36, so the channel weights are w[:, 2] / 36.
    expected = np.maximum((a * (w[:, 2] / 36.0)).sum(-1), 0)
    expected /= np.maximum(expected.max(axis=(1, 2), keepdims=True), 1e-12)
    np.testing.assert_allclose(cams, expected, atol=1e-5)
    assert pred.shape == (2,)


def test_confusion_matrix_png_and_csv(tmp_path):
    cm = np.array([[5, 1], [2, 7]])
    plots.write_confusion_matrix(cm, ["happy", "sad"], tmp_path / "cm.png", tmp_path / "cm.csv")
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "cm.csv").read_text().splitlines()
    assert rows[1] == "happy,5,1" and rows[2] == "sad,2,7"


def test_count_params_splits_trainable():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.BatchNormalization()])
    assert count_params(model) == {"trainable": 15 + 6, "non_trainable": 6, "total": 27}
