"""PDLS / F-PDLS (seed 004, Eqs. 2-3) against NumPy and against Keras' own losses."""

import numpy as np
import pytest

import keras

from keras_fer.losses import FPDLS, PDLS

C = 8


def np_log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_fpdls(t, d, logits, alpha, gamma):
    """Eq. 2-3 per sample: -sum_c (1 - p_c)^gamma (alpha t_c + (1 - alpha) d_c) log p_c."""
    log_p = np_log_softmax(logits)
    p = np.exp(log_p)
    return -np.sum((1 - p) ** gamma * (alpha * t + (1 - alpha) * d) * log_p, axis=-1)


def np_vote_targets(votes, ties="first"):
    votes = np.asarray(votes, dtype=np.float64)
    t = np.zeros_like(votes)
    for i, row in enumerate(votes):
        if row.max() <= 0:
            continue
        winners = np.flatnonzero(row == row.max())
        if ties == "first":
            t[i, winners[0]] = 1.0
        else:
            t[i, winners] = 1.0 / len(winners)
    total = votes.sum(axis=-1, keepdims=True)
    return t, np.divide(votes, total, out=np.zeros_like(votes), where=total > 0)


def _data(batch=5, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(batch, C)).astype("float32")
    votes = rng.integers(0, 6, size=(batch, C)).astype("float32")
    votes[np.arange(batch), votes.argmax(axis=-1)] += 1  # a unique majority ...
    votes[0] = [0, 4, 0, 4, 1, 0, 0, 1]   # ... except a tie between classes 1 and 3
    votes[1] = [10, 0, 0, 0, 0, 0, 0, 0]  # unanimous
    return votes, logits


def _value(loss, y_true, y_pred, **kwargs):
    return float(keras.ops.convert_to_numpy(loss(y_true, y_pred, **kwargs)))


@pytest.mark.parametrize("alpha, gamma", [(0.5, 2.0), (0.2, 0.0), (0.9, 1.5), (1.0, 0.5),
                                          (0.0, 3.0)])
def test_fpdls_votes_matches_numpy(alpha, gamma):
    votes, logits = _data()
    t, d = np_vote_targets(votes)
    loss = FPDLS(alpha=alpha, gamma=gamma, reduction=None)
    got = keras.ops.convert_to_numpy(loss(votes, logits))
    np.testing.assert_allclose(got, np_fpdls(t, d, logits, alpha, gamma), rtol=1e-5, atol=1e-6)
    mean = _value(FPDLS(alpha=alpha, gamma=gamma), votes, logits)
    np.testing.assert_allclose(mean, np_fpdls(t, d, logits, alpha, gamma).mean(), rtol=1e-5)


def test_ties_rules_and_empty_rows():
    votes, logits = _data()
    votes[2] = 0  # nobody voted: no label, no loss
    for ties in ("first", "split"):
        t, d = np_vote_targets(votes, ties)
        got = keras.ops.convert_to_numpy(FPDLS(ties=ties, reduction=None)(votes, logits))
        np.testing.assert_allclose(got, np_fpdls(t, d, logits, 0.5, 2.0), rtol=1e-5, atol=1e-6)
        assert got[2] == 0.0
    first = keras.ops.convert_to_numpy(FPDLS(ties="first", reduction=None)(votes, logits))
    split = keras.ops.convert_to_numpy(FPDLS(ties="split", reduction=None)(votes, logits))
    assert abs(first[0] - split[0]) > 1e-3  # the tied row differs ...
    np.testing.assert_allclose(first[1:], split[1:], rtol=1e-6)  # ... and only that one


def test_ties_priority_order():
    votes, logits = _data()
    order = [6, 3, 5, 4, 0, 1, 2, 7]  # FERPlus column order: class 3 (happy) before 1
    t, d = np_vote_targets(votes)
    t[0] = np.eye(C)[3]
    got = keras.ops.convert_to_numpy(FPDLS(ties=order, reduction=None)(votes, logits))
    np.testing.assert_allclose(got, np_fpdls(t, d, logits, 0.5, 2.0), rtol=1e-5, atol=1e-6)
    assert FPDLS(ties=tuple(order)).get_config()["ties"] == order
    with pytest.raises(ValueError, match="ties orders 7 classes"):
        FPDLS(ties=list(range(7)))(votes, logits)


def test_pdls_is_fpdls_with_gamma_zero():
    votes, logits = _data(seed=1)
    for alpha in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(_value(PDLS(alpha=alpha), votes, logits),
                                   _value(FPDLS(alpha=alpha, gamma=0.0), votes, logits),
                                   rtol=1e-6)
    t, d = np_vote_targets(votes)
    np.testing.assert_allclose(_value(PDLS(alpha=0.3), votes, logits),
                               np_fpdls(t, d, logits, 0.3, 0.0).mean(), rtol=1e-5)
    assert "gamma" not in PDLS().get_config()


def test_alpha_one_gamma_zero_is_categorical_crossentropy():
    votes, logits = _data(seed=2)
    t, _ = np_vote_targets(votes)
    cce = keras.losses.CategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(_value(FPDLS(alpha=1.0, gamma=0.0), votes, logits),
                               _value(cce, t.astype("float32"), logits), rtol=1e-5)
    # Confident wrong logits: still equal (log-softmax, no clipping).
    far = np.array([[30.0, -30.0, 0, 0, 0, 0, 0, 0]], "float32")
    onehot = np.eye(C, dtype="float32")[[1]]
    np.testing.assert_allclose(_value(FPDLS(alpha=1.0, gamma=0.0), onehot, far),
                               _value(cce, onehot, far), rtol=1e-5)


def test_matches_keras_focal_loss_on_the_mixed_target():
    votes, logits = _data(seed=3)
    t, d = np_vote_targets(votes)
    for alpha, gamma in [(0.5, 2.0), (0.7, 1.0)]:
        target = (alpha * t + (1 - alpha) * d).astype("float32")
        focal = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=gamma,
                                                          from_logits=True)
        np.testing.assert_allclose(_value(FPDLS(alpha=alpha, gamma=gamma), votes, logits),
                                   _value(focal, target, logits), rtol=1e-5)


def test_prior_mode_onehot_sparse_and_matrix():
    rng = np.random.default_rng(4)
    _, logits = _data(seed=4)
    labels = np.array([0, 3, 7, 1, 3])
    onehot = np.eye(C, dtype="float32")[labels]
    prior = rng.dirichlet(np.ones(C))
    t, d = onehot.astype("float64"), np.tile(prior, (len(labels), 1))
    expected = np_fpdls(t, d, logits, 0.6, 2.0)
    loss = FPDLS(alpha=0.6, prior=prior.tolist(), reduction=None)
    for y in (onehot, labels, labels[:, None], labels.astype("float32")):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loss(y, logits)), expected,
                                   rtol=1e-5, atol=1e-6)
    # PDLS's class-conditional prior: row k of the matrix for a sample of class k.
    matrix = rng.dirichlet(np.ones(C), size=C)
    expected = np_fpdls(t, matrix[labels], logits, 0.6, 2.0)
    got = FPDLS(alpha=0.6, prior=matrix, reduction=None)(labels, logits)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, rtol=1e-5, atol=1e-6)


def test_from_probabilities_and_sample_weight():
    votes, logits = _data(seed=5)
    t, d = np_vote_targets(votes)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    np.testing.assert_allclose(_value(FPDLS(from_logits=False), votes, probs),
                               np_fpdls(t, d, logits, 0.5, 2.0).mean(), rtol=1e-4)
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0], "float32")
    per_sample = np_fpdls(t, d, logits, 0.5, 2.0)
    np.testing.assert_allclose(_value(FPDLS(), votes, logits, sample_weight=weights),
                               (per_sample * weights).mean(), rtol=1e-5)


def test_gradient_matches_finite_differences():
    import tensorflow as tf

    votes, logits = _data(batch=3, seed=6)
    loss = FPDLS(alpha=0.4, gamma=1.5, dtype="float64")
    z = tf.Variable(logits.astype("float64"))
    with tf.GradientTape() as tape:
        value = loss(votes, z)
    grad = tape.gradient(value, z).numpy()
    t, d = np_vote_targets(votes)
    numeric = np.zeros_like(grad)
    eps = 1e-6
    for idx in np.ndindex(*logits.shape):
        up, down = logits.astype("float64"), logits.astype("float64")
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (np_fpdls(t, d, up, 0.4, 1.5).mean()
                        - np_fpdls(t, d, down, 0.4, 1.5).mean()) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    # Saturated softmax (p = 1 in float32) keeps a finite gradient for gamma < 1.
    z = tf.Variable(np.array([[100.0, 0, 0, 0, 0, 0, 0, 0]], "float32"))
    with tf.GradientTape() as tape:
        value = FPDLS(gamma=0.5)(np.eye(C, dtype="float32")[[0]], z)
    assert np.all(np.isfinite(tape.gradient(value, z).numpy()))


def test_serialization_round_trip_and_compile():
    prior = (np.ones(C) / C).tolist()
    for loss in (FPDLS(alpha=0.3, gamma=1.0, prior=prior, ties="split", name="f"),
                 PDLS(alpha=0.8)):
        config = keras.saving.serialize_keras_object(loss)
        revived = keras.saving.deserialize_keras_object(config)
        assert type(revived) is type(loss)
        assert revived.get_config() == loss.get_config()
    votes, logits = _data(seed=7)
    loss = FPDLS(alpha=0.3, gamma=1.0)
    clone = FPDLS.from_config(loss.get_config())
    assert _value(clone, votes, logits) == _value(loss, votes, logits)
    # Inside a saved model: compile config round trip.
    import os
    import tempfile

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(C)(inputs))
    model.compile(optimizer="sgd", loss=PDLS(alpha=0.7, prior=prior))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
    assert isinstance(restored.loss, PDLS) and restored.loss.alpha == 0.7
    labels = np.array([1, 2], "int32")
    x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    np.testing.assert_allclose(restored.evaluate(x, labels, verbose=0),
                               model.evaluate(x, labels, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("kwargs, word", [
    ({"alpha": 1.5}, "alpha"),
    ({"alpha": -0.1}, "alpha"),
    ({"alpha": "half"}, "alpha"),
    ({"gamma": -1.0}, "gamma"),
    ({"gamma": float("nan")}, "gamma"),
    ({"prior": [0.5, 0.6]}, "prior"),
    ({"prior": [1.0]}, "prior"),
    ({"prior": [-0.5, 1.5]}, "prior"),
    ({"prior": [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]}, "prior"),
    ({"prior": [[0.5, 0.5], [0.2, 0.7]]}, "prior"),
    ({"ties": "random"}, "ties"),
    ({"ties": [0, 1, 1]}, "ties"),
    ({"from_logits": "yes"}, "from_logits"),
])
def test_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        FPDLS(**kwargs)


def test_wrong_number_of_classes():
    votes, logits = _data()
    with pytest.raises(ValueError, match="prior has 7 classes but y_pred has 8"):
        FPDLS(prior=np.ones(7) / 7)(np.array([0, 1, 2, 3, 4]), logits)
    with pytest.raises(ValueError, match="y_true"):
        FPDLS()(votes[:, :7], logits)
    with pytest.raises(ValueError, match="y_true"):
        FPDLS()(np.array([0, 1, 2, 3, 4]), logits)
    with pytest.raises(ValueError, match="y_pred"):
        FPDLS()(votes[:, :1], logits[:, :1])
