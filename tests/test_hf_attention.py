"""HighFrequencyAttention (SPEC 002, paper Eqs. 1-10) against an independent NumPy version."""

import numpy as np
import pytest

import keras

from keras_fer.layers import HighFrequencyAttention
from keras_fer.testing import check_gradients, run_layer_test

# The ablation's (query, key) pairs, written out again from the paper's section 4.3 rather
# than imported, so a wrong table in the layer cannot agree with itself.
PAIRS = {
    "hfc": [("hfc", "x")],
    "lfc": [("lfc", "x")],
    "hfc+lfc": [("hfc", "x"), ("lfc", "x")],
    "hfc+lfc+hl": [("hfc", "x"), ("lfc", "x"), ("hfc", "lfc")],
}


def reference_maps(x, w_pointwise, radius, filter_shape, query):
    """Stacked cross-correlation matrices (B, H, W, m), Eqs. 1-8, in float64 NumPy."""
    x = np.asarray(x, np.float64)
    xt = np.einsum("bhwc,c->bhw", x, np.asarray(w_pointwise, np.float64).reshape(-1))
    _, h, w = xt.shape
    # Distance from the centre of the fftshift-ed spectrum.
    iy = (np.arange(h) - h // 2)[:, None]
    ix = (np.arange(w) - w // 2)[None, :]
    if filter_shape == "disc":
        low = iy ** 2 + ix ** 2 <= radius ** 2
    else:
        low = np.maximum(np.abs(iy), np.abs(ix)) <= radius
    spectrum = np.fft.fftshift(np.fft.fft2(xt), axes=(-2, -1))

    def inverse(keep):
        z = np.fft.ifft2(np.fft.ifftshift(spectrum * keep, axes=(-2, -1)))
        # The symmetric filter keeps the image real: the real part is the whole answer.
        assert np.abs(z.imag).max() <= 1e-9 * max(1.0, np.abs(z.real).max())
        return z.real

    images = {"x": xt, "hfc": inverse(~low), "lfc": inverse(low)}
    svals = {k: np.linalg.svd(v, compute_uv=False) for k, v in images.items()}
    mats = []
    for q, k in PAIRS[query]:
        sq = np.zeros((len(x), h))
        sk = np.zeros((len(x), w))
        sq[:, : svals[q].shape[1]] = svals[q]
        sk[:, : svals[k].shape[1]] = svals[k]
        mats.append(sq[:, :, None] * sk[:, None, :])
    return np.stack(mats, axis=-1)


def reference_forward(x, w_pointwise, w_score, radius, filter_shape, query):
    """Eqs. 9-10: zero-padded 'same' correlation with the score kernel, sigmoid, product."""
    m = reference_maps(x, w_pointwise, radius, filter_shape, query)
    _, h, w, _ = m.shape
    k = w_score.shape[0]
    p = k // 2
    padded = np.pad(m, ((0, 0), (p, p), (p, p), (0, 0)))
    z = np.zeros(m.shape[:3])
    for di in range(k):
        for dj in range(k):
            z += padded[:, di:di + h, dj:dj + w, :] @ np.asarray(w_score[di, dj, :, 0], np.float64)
    a = 1.0 / (1.0 + np.exp(-z))
    return np.asarray(x, np.float64) * a[..., None], a


def prepared_layer(x, radius, filter_shape, query, dtype="float32", seed=0, **kwargs):
    """A built layer with random weights scaled so the sigmoid is not saturated.

    With untrained weights ``a`` could sit at 0 or 1 everywhere and any bug in ``M`` would be
    invisible; the score kernel is scaled to give logits of order 1.
    """
    rng = np.random.default_rng(seed)
    layer = HighFrequencyAttention(cutoff=radius, filter_shape=filter_shape, query=query,
                                   dtype=dtype, **kwargs)
    layer(x.astype(dtype))
    c = x.shape[-1]
    w_pw = rng.normal(size=(1, 1, c, 1))
    maps = reference_maps(x, w_pw, radius, filter_shape, query)
    k = layer.kernel_size
    w_score = rng.normal(size=(k, k, maps.shape[-1], 1))
    w_score /= np.sqrt(k * k * maps.shape[-1]) * np.sqrt(np.mean(maps ** 2)) + 1e-12
    layer.pointwise.kernel.assign(w_pw.astype(dtype))
    layer.score_conv.kernel.assign(w_score.astype(layer.score_conv.kernel.dtype))
    return layer, w_pw, w_score


def random_input(shape, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype("float32")


@pytest.mark.parametrize("query", list(PAIRS))
@pytest.mark.parametrize("size,radius,filter_shape",
                         [(7, 1, "disc"), (8, 2, "square"), (15, 3.5, "disc"), (15, 2, "square")])
def test_forward_matches_numpy_float64(query, size, radius, filter_shape):
    # In float64 every step (FFT, SVD, conv) agrees to rounding: a tight check of the equations.
    x = random_input((3, size, size, 5))
    layer, w_pw, w_score = prepared_layer(x, radius, filter_shape, query, dtype="float64")
    expected, a = reference_forward(x, w_pw, w_score, radius, filter_shape, query)
    assert a.std() > 0.05, "attention map is flat: the comparison would be vacuous"
    got = keras.ops.convert_to_numpy(layer(x.astype("float64")))
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("query", list(PAIRS))
@pytest.mark.parametrize("size", [7, 8, 15])
def test_forward_matches_numpy_float32(query, size):
    # Tolerance: float32 SVD/FFT carry relative errors ~1e-6 of the largest singular value, and
    # M multiplies two of them, so the logits (order 1 here) are off by a few 1e-6; the
    # sigmoid's slope <= 1/4 and |x| <= 1 keep the output error below ~1e-6. 2e-5 leaves room.
    x = random_input((2, size, size, 6), seed=size)
    layer, w_pw, w_score = prepared_layer(x, 1, "disc", query)
    expected, _ = reference_forward(x, w_pw, w_score, 1, "disc", query)
    got = keras.ops.convert_to_numpy(layer(x))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=0)


def test_attention_scores_are_the_map_of_eq_9():
    x = random_input((2, 9, 9, 3))
    layer, w_pw, w_score = prepared_layer(x, 2, "disc", "hfc", dtype="float64")
    _, a = reference_forward(x, w_pw, w_score, 2, "disc", "hfc")
    scores = keras.ops.convert_to_numpy(layer.attention_scores(x.astype("float64")))
    assert scores.shape == (2, 9, 9, 1)
    np.testing.assert_allclose(scores[..., 0], a, atol=1e-10)
    fresh = HighFrequencyAttention(cutoff=2)
    assert fresh.attention_scores(x).shape == (2, 9, 9, 1)  # builds itself when needed


@pytest.mark.parametrize("query", ["hfc", "lfc", "hfc+lfc+hl"])
@pytest.mark.parametrize("size", [7, 8])
def test_attention_map_ignores_where_the_content_is(query, size):
    # Singular values, and the symmetric filters, are unchanged by flips, transposes and
    # rotations of the map, so Eq. 8 gives the same map for a mirrored face: a[i, j] belongs
    # to singular-value ranks i, j, never to image position (i, j). This is why trained
    # modules end up as fixed masks (docs/recipes.md).
    layer = HighFrequencyAttention(query=query, cutoff=1)
    x = np.random.default_rng(0).normal(size=(2, size, size, 5)).astype("float32")
    a = np.asarray(layer.attention_scores(x))
    for moved in (x[:, ::-1], x[:, :, ::-1], x.transpose(0, 2, 1, 3),
                  np.rot90(x, axes=(1, 2))):
        np.testing.assert_allclose(
            np.asarray(layer.attention_scores(np.ascontiguousarray(moved))), a, atol=2e-5)
    # ...while the content itself does move the map.
    other = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    assert np.abs(np.asarray(layer.attention_scores(other)) - a).max() > 1e-3


def test_non_square_pad_mode_matches_zero_padded_reference():
    x = random_input((2, 6, 9, 4))
    layer, w_pw, w_score = prepared_layer(x, 1, "square", "hfc+lfc", dtype="float64",
                                          non_square="pad")
    expected, a = reference_forward(x, w_pw, w_score, 1, "square", "hfc+lfc")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x.astype("float64"))),
                               expected, atol=1e-10, rtol=1e-9)


def test_relative_cutoff_scales_with_the_input():
    # 0.5 of the half size: radius 2 bins at 8x8, 3.5 at 14x14.
    for size, radius in [(8, 2.0), (14, 3.5)]:
        x = random_input((2, size, size, 3), seed=size)
        layer, w_pw, w_score = prepared_layer(x, 0.5, "disc", "hfc", dtype="float64",
                                              relative_cutoff=True)
        expected, _ = reference_forward(x, w_pw, w_score, radius, "disc", "hfc")
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x.astype("float64"))),
                                   expected, atol=1e-10, rtol=1e-9)


def test_cutoff_zero_removes_only_the_mean():
    # A constant-per-sample x~ has no high-frequency content: h = 0, so s_h = 0, M = 0 and
    # a = sigmoid(0) = 1/2 everywhere, whatever the weights.
    x = np.ones((2, 6, 6, 3), "float32") * np.array([1.0, -2.0])[:, None, None, None]
    layer = HighFrequencyAttention(cutoff=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), 0.5 * x, atol=1e-6)


def test_run_layer_test_default():
    run_layer_test(HighFrequencyAttention, {"cutoff": 1.0}, random_input((2, 8, 8, 4)),
                   expected_output_shape=(2, 8, 8, 4), expected_num_trainable_weights=2,
                   expected_num_params=4 + 49, atol=1e-5, rtol=1e-5)


def test_run_layer_test_all_options():
    init = {"cutoff": 0.3, "filter_shape": "square", "relative_cutoff": True,
            "query": "hfc+lfc+hl", "kernel_size": 5, "non_square": "pad",
            "kernel_initializer": "he_normal"}
    run_layer_test(HighFrequencyAttention, init, random_input((1, 7, 7, 3)),
                   expected_output_shape=(1, 7, 7, 3), expected_num_params=3 + 3 * 25,
                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("query,size", [("hfc", 6), ("hfc+lfc+hl", 5)])
def test_gradients(query, size):
    # Finite differences cost two calls per input entry and weight: one sample, two channels
    # and a 3x3 score kernel (the 7x7 one is a plain convolution) keep this a few seconds.
    x = random_input((1, size, size, 2))
    layer, _, _ = prepared_layer(x, 1, "disc", query, kernel_size=3)
    check_gradients(layer, x, eps=1e-5, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("x", [np.zeros((2, 6, 6, 3), "float32"),
                               np.ones((2, 6, 6, 3), "float32"),
                               np.tile(np.eye(6, dtype="float32")[None, :, :, None], (1, 1, 1, 2))],
                         ids=["zeros", "constant", "identity"])
def test_gradients_finite_at_repeated_singular_values(x):
    # All-zero, rank-one (h = 0) and identity (all singular values equal) inputs are where the
    # individual singular values are not differentiable.
    import tensorflow as tf

    layer = HighFrequencyAttention(cutoff=1, query="hfc+lfc+hl")
    xt = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(xt) ** 2)
    grads = tape.gradient(loss, [xt] + layer.trainable_variables)
    for g in grads:
        assert g is not None and np.all(np.isfinite(g.numpy()))


def test_unknown_spatial_size_in_functional_model():
    layer = HighFrequencyAttention(cutoff=1, query="hfc+lfc", non_square="pad")
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, layer(inputs))
    for shape in [(2, 7, 7, 3), (1, 8, 8, 3), (2, 5, 8, 3)]:
        x = random_input(shape, seed=shape[1] * 10 + shape[2])
        w_pw = layer.pointwise.kernel.numpy()
        w_score = layer.score_conv.kernel.numpy()
        expected, _ = reference_forward(x, w_pw, w_score, 1, "disc", "hfc+lfc")
        np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, atol=2e-5)


def test_batch_of_one_and_batch_independence():
    x = random_input((3, 7, 7, 4))
    layer = HighFrequencyAttention(cutoff=1)
    full = keras.ops.convert_to_numpy(layer(x))
    for i in range(3):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x[i:i + 1])), full[i:i + 1],
                                   atol=1e-6)


@pytest.mark.parametrize("channels,expected", [([64, 64, 128, 256], 708),
                                               ([32, 16, 24, 32, 64, 96, 160], 767)])
def test_parameter_counts_match_the_paper(channels, expected):
    total = 0
    for c in channels:
        layer = HighFrequencyAttention()
        layer.build((None, 14, 14, c))
        total += layer.count_params()
    assert total == expected


@pytest.mark.parametrize("query,matrices", [("hfc", 1), ("lfc", 1), ("hfc+lfc", 2),
                                            ("hfc+lfc+hl", 3)])
def test_parameter_count_per_variant(query, matrices):
    layer = HighFrequencyAttention(query=query)
    layer.build((None, 14, 14, 64))
    assert layer.count_params() == 64 + 49 * matrices
    assert layer.num_matrices == matrices


def test_mixed_precision_runs_spectral_part_in_float32():
    layer = HighFrequencyAttention(cutoff=1, dtype="mixed_float16")
    # Large activations: products of singular values overflow float16 (max 65504).
    x = random_input((2, 16, 16, 8)) * 100
    y = layer(x.astype("float16"))
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(y)))


@pytest.mark.parametrize("kwargs,match", [
    ({"cutoff": -1}, "cutoff must be >= 0"),
    ({"cutoff": "big"}, "cutoff must be a number"),
    ({"cutoff": 1.0, "relative_cutoff": True}, "cutoff must be < 1"),
    ({"filter_shape": "ring"}, "filter_shape"),
    ({"query": "hl"}, "query must be one of"),
    ({"kernel_size": 6}, "kernel_size must be a positive odd int"),
    ({"kernel_size": 0}, "kernel_size"),
    ({"non_square": "crop"}, "non_square"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HighFrequencyAttention(**kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\(batch, H, W, C\)"):
        HighFrequencyAttention()(np.zeros((2, 8, 8), "float32"))
    with pytest.raises(ValueError, match=r"square.*\(2, 6, 8, 3\)"):
        HighFrequencyAttention()(np.zeros((2, 6, 8, 3), "float32"))
    with pytest.raises(ValueError, match=r"cutoff=3 .*7x7.*< min\(H, W\) // 2 = 3"):
        HighFrequencyAttention(cutoff=3)(np.zeros((1, 7, 7, 3), "float32"))
    with pytest.raises(ValueError, match=r"cutoff=0.9 \(radius 3.15 bins\)"):
        HighFrequencyAttention(cutoff=0.9, relative_cutoff=True)(np.zeros((1, 7, 7, 3), "float32"))
    with pytest.raises(ValueError, match="known channel count"):
        HighFrequencyAttention().build((None, 8, 8, None))
