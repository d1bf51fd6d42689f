"""Batch Transformer attention heads (paper 000, Eqs. 2-5) against NumPy references."""

import numpy as np
import pytest

import keras

from keras_fer.layers import BatchAttention, CosineAttention, PatchBatchAttention
from keras_fer.testing import check_gradients, run_layer_test

EPS = 1e-6


# --- NumPy references, written from the paper's equations --------------------------------

def np_softmax(z, axis):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def np_qk(x, wq, bq, wk, bk, use_tanh):
    q, k = x @ wq + bq, x @ wk + bk
    return (np.tanh(q), np.tanh(k)) if use_tanh else (q, k)


def np_cpe(x, wq, bq, wk, bk, use_tanh=False, eps=EPS):
    """Eq. 2 for one (n, d) matrix: B[i, j] = <q_i, k_j> / (|q_i| |k_j|), Y = softmax_j(B) X."""
    x = x.astype(np.float64)
    q, k = np_qk(x, wq, bq, wk, bk, use_tanh)
    n = x.shape[0]
    b = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            norms = max(np.linalg.norm(q[i]), eps) * max(np.linalg.norm(k[j]), eps)
            b[i, j] = q[i] @ k[j] / norms
    return np_softmax(b, axis=1) @ x


def np_bpc(x, wq, bq, wk, bk, use_tanh=False, eps=EPS):
    """Eq. 3 for one (n, d) matrix: q2, k2 column sums of squares, D = sqrt(q2 k2^T),
    B = Q^T K / D (d x d), softmax over the first axis, Y = X softmax(B)."""
    x = x.astype(np.float64)
    q, k = np_qk(x, wq, bq, wk, bk, use_tanh)
    q_norm = np.maximum(np.sqrt(np.sum(q * q, axis=0)), eps)
    k_norm = np.maximum(np.sqrt(np.sum(k * k, axis=0)), eps)
    b = (q.T @ k) / np.outer(q_norm, k_norm)
    return x @ np_softmax(b, axis=0)


def randomize(layer, seed=0, scale=0.5):
    """Random kernels and non-zero biases, so the biases are exercised too."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=scale, size=w.shape).astype("float32")
                       for w in layer.get_weights()])


def head_weights(layer):
    return [v.numpy().astype(np.float64) for v in
            (layer.query_kernel, layer.query_bias, layer.key_kernel, layer.key_bias)]


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# --- forward pass vs the references --------------------------------------------------------

@pytest.mark.parametrize("use_tanh", [False, True])
@pytest.mark.parametrize("cls,ref", [(CosineAttention, np_cpe), (BatchAttention, np_bpc)])
def test_tokens_mode_matches_numpy(cls, ref, use_tanh):
    x = rand(3, 5, 4)
    layer = cls(axis="tokens", use_tanh=use_tanh)
    layer(x)
    randomize(layer)
    w = head_weights(layer)
    expected = np.stack([ref(xi, *w, use_tanh=use_tanh) for xi in x])
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_tanh", [False, True])
@pytest.mark.parametrize("cls,ref", [(CosineAttention, np_cpe), (BatchAttention, np_bpc)])
def test_batch_mode_matches_numpy_on_fixed_batch(cls, ref, use_tanh):
    x = rand(7, 5, seed=1)
    layer = cls(axis="batch", use_tanh=use_tanh)
    layer(x)
    randomize(layer, seed=2)
    expected = ref(x, *head_weights(layer), use_tanh=use_tanh)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls,ref", [(CosineAttention, np_cpe), (BatchAttention, np_bpc)])
def test_batch_mode_flattens_leading_axes(cls, ref):
    x = rand(3, 2, 4, seed=3)
    layer = cls(axis="batch")
    layer(x)
    randomize(layer, seed=4)
    expected = ref(x.reshape(6, 4), *head_weights(layer)).reshape(3, 2, 4)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5, rtol=1e-5)


def test_output_rows_are_convex_combinations():
    # CPE mixes rows (each output row inside the per-feature range of the input rows),
    # BPC mixes the features within a row.
    x = rand(2, 6, 5, seed=5)
    y = CosineAttention()(x).numpy()
    assert np.all(y <= x.max(axis=1, keepdims=True) + 1e-6)
    assert np.all(y >= x.min(axis=1, keepdims=True) - 1e-6)
    y = BatchAttention()(x).numpy()
    assert np.all(y <= x.max(axis=2, keepdims=True) + 1e-6)
    assert np.all(y >= x.min(axis=2, keepdims=True) - 1e-6)


# --- batch (in)variance --------------------------------------------------------------------

@pytest.mark.parametrize("layer_fn,x", [
    (lambda: CosineAttention(axis="tokens"), rand(6, 5, 4, seed=6)),
    (lambda: BatchAttention(axis="tokens", use_tanh=True), rand(6, 5, 4, seed=6)),
    (lambda: PatchBatchAttention(2, axis="tokens"), rand(6, 4, 6, 2, seed=6)),
])
def test_tokens_mode_is_batch_invariant(layer_fn, x):
    layer = layer_fn()
    layer(x)
    randomize(layer, seed=7)
    full = layer(x).numpy()
    perm = np.array([4, 0, 5, 2, 1, 3])
    np.testing.assert_allclose(layer(x[perm]).numpy(), full[perm], atol=1e-6)
    parts = np.concatenate([layer(x[:1]).numpy(), layer(x[1:4]).numpy(), layer(x[4:]).numpy()])
    np.testing.assert_allclose(parts, full, atol=1e-6)


@pytest.mark.parametrize("layer_fn,x", [
    (lambda: CosineAttention(axis="batch"), rand(6, 4, seed=8)),
    (lambda: BatchAttention(axis="batch"), rand(6, 4, seed=8)),
    (lambda: PatchBatchAttention(2, axis="batch"), rand(6, 4, 4, 1, seed=8)),
])
def test_batch_mode_depends_on_batch_mates(layer_fn, x):
    layer = layer_fn()
    full = layer(x).numpy()
    alone = layer(x[:3]).numpy()
    assert np.max(np.abs(full[:3] - alone)) > 1e-3


# --- batch of one, single token, zero vectors ----------------------------------------------

@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
def test_cpe_batch_of_one_is_identity():
    x = rand(1, 5, seed=9)
    layer = CosineAttention(axis="batch")
    layer(x)
    randomize(layer)
    np.testing.assert_array_equal(layer(x).numpy(), x)


@pytest.mark.parametrize("axis,shape", [("batch", (1, 5)), ("tokens", (2, 1, 5))])
def test_bpc_single_row_uses_only_signs(axis, shape):
    x = rand(*shape, seed=10)
    layer = BatchAttention(axis=axis)
    layer(x)
    randomize(layer, seed=11)
    wq, bq, wk, bk = head_weights(layer)
    for row, out in zip(x.reshape(-1, 5), layer(x).numpy().reshape(-1, 5)):
        s, t = np.sign(row @ wq + bq), np.sign(row @ wk + bk)
        weights = np_softmax(np.outer(s, t), axis=0)  # e or 1/e by sign agreement
        np.testing.assert_allclose(out, row @ weights, atol=1e-5)


@pytest.mark.parametrize("cls", [CosineAttention, BatchAttention])
@pytest.mark.parametrize("axis", ["tokens", "batch"])
def test_zero_vectors_give_finite_outputs_and_gradients(cls, axis):
    import tensorflow as tf

    x = rand(3, 4, 5, seed=12)
    x[0] = 0.0          # a whole zero sample
    x[1, 2] = 0.0       # a zero token
    x = x if axis == "tokens" else x.reshape(12, 5)
    layer = cls(axis=axis)  # zero biases: a zero input gives zero queries and keys
    xt = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = layer(xt)
        loss = tf.reduce_sum(y * y)
    grads = tape.gradient(loss, [xt] + layer.trainable_variables)
    assert np.all(np.isfinite(y.numpy()))
    for g in grads:
        assert np.all(np.isfinite(g.numpy()))
    zeros = np.zeros_like(x)
    np.testing.assert_array_equal(layer(zeros).numpy(), zeros)


def test_zero_similarity_for_zero_column():
    # A feature column that is zero over the batch has cos = 0 with every key column, so its
    # attention weights fall back to exp(0) against the other entries of the column.
    x = rand(4, 3, seed=13)
    layer = BatchAttention(axis="batch", use_bias=False,
                           kernel_initializer=keras.initializers.Identity())
    x[:, 1] = 0.0
    wq = np.eye(3)
    expected = np_bpc(x, wq, np.zeros(3), wq, np.zeros(3))
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-6)


def test_half_precision_zero_vectors_stay_finite():
    layer = BatchAttention(axis="batch", dtype="mixed_float16")
    y = layer(np.zeros((4, 3), "float32"))
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(y)))


# --- Patchy BPC ------------------------------------------------------------------------------

def np_patch_bpc_batch(x, p, wq, bq, wk, bk, use_tanh=False):
    """Eq. 4: one BPC head per (channel, patch) over the batch, cut out by slicing."""
    _, h, w, c = x.shape
    gh, gw = h // p, w // p
    y = np.zeros(x.shape, np.float64)
    for ch in range(c):
        for i in range(gh):
            for j in range(gw):
                head = ch * gh * gw + i * gw + j
                sl = (slice(None), slice(i * p, (i + 1) * p), slice(j * p, (j + 1) * p), ch)
                patch = x[sl].reshape(len(x), p * p)
                out = np_bpc(patch, wq[head], bq[head], wk[head], bk[head], use_tanh)
                y[sl] = out.reshape(len(x), p, p)
    return y


def np_patch_bpc_tokens(x, p, wq, bq, wk, bk, use_tanh=False):
    """Tokens mode: per sample and channel, the patches are the rows of one BPC head."""
    _, h, w, c = x.shape
    y = np.zeros(x.shape, np.float64)
    cells = [(i, j) for i in range(h // p) for j in range(w // p)]
    for b in range(len(x)):
        for ch in range(c):
            rows = np.stack([x[b, i * p:(i + 1) * p, j * p:(j + 1) * p, ch].reshape(-1)
                             for i, j in cells])
            out = np_bpc(rows, wq[ch], bq[ch], wk[ch], bk[ch], use_tanh)
            for (i, j), r in zip(cells, out):
                y[b, i * p:(i + 1) * p, j * p:(j + 1) * p, ch] = r.reshape(p, p)
    return y


@pytest.mark.parametrize("use_tanh", [False, True])
@pytest.mark.parametrize("axis,ref", [("batch", np_patch_bpc_batch),
                                      ("tokens", np_patch_bpc_tokens)])
def test_patch_attention_matches_numpy(axis, ref, use_tanh):
    x = rand(3, 6, 4, 2, seed=14)  # odd grid: 3 x 2 patches of 2 x 2, two channels
    layer = PatchBatchAttention(2, axis=axis, use_tanh=use_tanh)
    layer(x)
    randomize(layer, seed=15)
    expected = ref(x.astype(np.float64), 2, *head_weights(layer), use_tanh=use_tanh)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5, rtol=1e-5)


def test_patch_attention_heads_and_paper_size():
    layer = PatchBatchAttention(2, axis="batch")
    layer.build((None, 6, 4, 2))
    assert layer.num_heads == 2 * 3 * 2 and layer.query_kernel.shape == (12, 4, 4)
    layer = PatchBatchAttention(2, axis="tokens")
    layer.build((None, 6, 4, 2))
    assert layer.num_heads == 2 and layer.query_bias.shape == (2, 4)
    # Section 5: 100 x 100 x 3 image, 5 x 5 grid of 20 x 20 patches per channel -> 75 heads.
    paper = PatchBatchAttention(20, axis="batch")
    paper.build((None, 100, 100, 3))
    assert paper.num_heads == 75
    assert paper.count_params() == 2 * 75 * (400 * 400 + 400) == 24_060_000


def test_patch_heads_initialised_like_single_heads():
    layer = PatchBatchAttention(4, axis="batch")
    layer.build((None, 16, 16, 4))  # 64 heads of 16 x 16
    std = np.std(layer.query_kernel.numpy(), axis=(1, 2))
    glorot = np.sqrt(2.0 / (16 + 16))
    assert np.all(np.abs(std - glorot) < 0.35 * glorot)
    heads = layer.query_kernel.numpy().reshape(64, -1)
    assert not np.allclose(heads[0], heads[1])


# --- the shared harness, gradients -----------------------------------------------------------

@pytest.mark.parametrize("cls,kwargs,x", [
    (CosineAttention, {"axis": "tokens"}, rand(2, 5, 4, seed=16)),
    (CosineAttention, {"axis": "batch", "use_tanh": True}, rand(5, 4, seed=16)),
    (BatchAttention, {"axis": "tokens", "use_tanh": True, "epsilon": 1e-5,
                      "kernel_regularizer": "l2"}, rand(2, 5, 4, seed=16)),
    (BatchAttention, {"axis": "batch"}, rand(5, 4, seed=16)),
    (PatchBatchAttention, {"patch_size": 2, "axis": "batch"}, rand(3, 4, 6, 2, seed=16)),
    (PatchBatchAttention, {"patch_size": 2, "axis": "tokens", "use_bias": False},
     rand(3, 4, 6, 2, seed=16)),
])
def test_run_layer_test(cls, kwargs, x):
    use_bias = kwargs.get("use_bias", True)
    run_layer_test(cls, kwargs, x, expected_output_shape=x.shape,
                   expected_num_trainable_weights=4 if use_bias else 2, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layer_fn,x", [
    (lambda: CosineAttention(axis="tokens", use_tanh=True), rand(2, 3, 3, seed=17)),
    (lambda: CosineAttention(axis="batch"), rand(4, 3, seed=17)),
    (lambda: BatchAttention(axis="batch"), rand(4, 3, seed=17)),
    (lambda: BatchAttention(axis="tokens", use_tanh=True), rand(2, 3, 3, seed=17)),
    (lambda: PatchBatchAttention(2, axis="batch"), rand(3, 2, 4, 1, seed=17)),
    (lambda: PatchBatchAttention(2, axis="tokens", use_tanh=True), rand(2, 2, 4, 1, seed=17)),
])
def test_gradients(layer_fn, x):
    layer = layer_fn()
    layer(x)
    randomize(layer, seed=18)
    check_gradients(layer, x, eps=1e-4, atol=1e-5, rtol=1e-4)


# --- argument and shape errors -----------------------------------------------------------

@pytest.mark.parametrize("cls", [CosineAttention, BatchAttention])
def test_tokens_mode_rejects_rank_two(cls):
    with pytest.raises(ValueError, match=r"axis=\"tokens\".*\(batch, n, d\).*\(4, 5\)"):
        cls(axis="tokens")(np.zeros((4, 5), "float32"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="axis"):
        BatchAttention(axis="features")
    with pytest.raises(ValueError, match="epsilon"):
        CosineAttention(epsilon=0)
    with pytest.raises(ValueError, match="patch_size"):
        PatchBatchAttention(0)
    with pytest.raises(ValueError, match="patch_size"):
        PatchBatchAttention(2.5)


def test_patch_attention_shape_errors():
    with pytest.raises(ValueError, match=r"patch_size=4.*\(2, 6, 8, 3\)"):
        PatchBatchAttention(4)(np.zeros((2, 6, 8, 3), "float32"))
    with pytest.raises(ValueError, match=r"\(batch, H, W, C\)"):
        PatchBatchAttention(2)(np.zeros((2, 6, 8), "float32"))


def test_layer_rejects_other_feature_size_after_build():
    layer = BatchAttention(axis="tokens")
    layer(np.zeros((1, 3, 4), "float32"))
    with pytest.raises(ValueError):
        layer(np.zeros((1, 3, 5), "float32"))
