"""Batch Transformer generators (paper 000, Figures 1-2) against NumPy references."""

import os

import numpy as np
import pytest

import keras

from keras_fer import generators as G
from keras_fer.generators import ImageDestandardization, ImageStandardization
from keras_fer.testing import check_gradients, numeric_gradient, run_layer_test, run_model_test

EPS_STD = 1e-3
EPS_COS = 1e-6


# --- NumPy references written from the paper's equations ----------------------------------

def np_softmax(z, axis):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def np_standardize(x):
    """generic_mean_std_scale2D: each image to zero mean, unit (population) std."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    mean = flat.mean(axis=1)
    std = np.maximum(flat.std(axis=1), EPS_STD)
    shape = (-1,) + (1,) * (x.ndim - 1)
    return (x - mean.reshape(shape)) / std.reshape(shape), mean.reshape(shape), std.reshape(shape)


def np_cos_matrix(a, b):
    """S[i, j] = <a_i, b_j> / (|a_i| |b_j|), norms clamped below by eps."""
    na = np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), EPS_COS)
    nb = np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), EPS_COS)
    return (a / na) @ (b / nb).T


def np_bpc(x, wq, bq, wk, bk):
    """Eq. 3 for one (n, d) matrix: columns of Q and K compared, softmax over the first axis,
    Y = X softmax(B)."""
    q, k = x @ wq + bq, x @ wk + bk
    return x @ np_softmax(np_cos_matrix(q.T, k.T), axis=0)


def np_cpe(x, wq, bq, wk, bk):
    """Eq. 2 for one (n, d) matrix: rows compared, softmax over keys, Y = softmax(B) X."""
    q, k = x @ wq + bq, x @ wk + bk
    return np_softmax(np_cos_matrix(q, k), axis=1) @ x


def np_dense(x, layer):
    w, b = (v.astype(np.float64) for v in layer.get_weights())
    return x @ w + b


def np_decoder(model, z):
    """Eqs. 7-8: LrReLUDense z -> W relu(A z) + b, LrReLU A relu(.), Dense."""
    expand = model.get_layer("decoder_expand")
    a, w, b = (v.astype(np.float64) for v in expand.get_weights())
    h = np.maximum(z, 0) @ (a[:, None] * w) + b
    a2 = model.get_layer("decoder_lrrelu").get_weights()[0].astype(np.float64)
    h = a2 * np.maximum(h, 0)
    return np_dense(h, model.get_layer("decoder_output"))


def head(layer, i=None):
    ws = [layer.query_kernel, layer.query_bias, layer.key_kernel, layer.key_bias]
    ws = [w.numpy().astype(np.float64) for w in ws]
    return ws if i is None else [w[i] for w in ws]


def np_simple(model, x, c, axis, num_tokens=None, reinject=False):
    z, mean, std = np_standardize(x)
    h = np_dense(np.concatenate([z.reshape(len(x), -1), c], axis=1), model.get_layer("mix"))
    bpc = model.get_layer("bpc")
    if axis == "batch":
        h = np_bpc(h, *head(bpc))
    else:
        t = h.reshape(len(x), num_tokens, -1)
        h = np.stack([np_bpc(ti, *head(bpc)) for ti in t]).reshape(len(x), -1)
    z = np_dense(h, model.get_layer("bottleneck"))
    if reinject:
        z = np.concatenate([z, c], axis=1)
    return np_decoder(model, z).reshape(x.shape) * std + mean


def np_patches(img, p):
    """(H, W, C) -> (C, G, p*p): channel-major, patches row-major, pixels row-major."""
    h, w, ch = img.shape
    out = []
    for c in range(ch):
        for i in range(h // p):
            for j in range(w // p):
                out.append(img[i * p:(i + 1) * p, j * p:(j + 1) * p, c].reshape(-1))
    return np.array(out).reshape(ch, (h // p) * (w // p), p * p)


def np_unpatches(patches, shape, p):
    h, w, ch = shape
    img = np.zeros(shape)
    g = patches.reshape(ch, h // p, w // p, p, p)
    for c in range(ch):
        for i in range(h // p):
            for j in range(w // p):
                img[i * p:(i + 1) * p, j * p:(j + 1) * p, c] = g[c, i, j]
    return img


def np_patch_bpc(layer, x, p, axis):
    """Eq. 4: independent BPC heads on the p x p patches, joined by direct sum."""
    patches = np.stack([np_patches(xi, p) for xi in x])  # (B, C, G, d)
    b, ch, g, d = patches.shape
    out = np.empty_like(patches)
    if axis == "batch":  # one head per (channel, patch), the batch gives the rows
        for c in range(ch):
            for i in range(g):
                out[:, c, i] = np_bpc(patches[:, c, i], *head(layer, c * g + i))
    else:  # one head per channel, a sample's patches give the rows
        for s in range(b):
            for c in range(ch):
                out[s, c] = np_bpc(patches[s, c], *head(layer, c))
    return np.stack([np_unpatches(o, x.shape[1:], p) for o in out])


def np_patchy(model, x, c, axis, p, levels, q):
    z, mean, std = np_standardize(x)
    z = z + np_dense(c, model.get_layer("condition_image")).reshape(x.shape)
    # CPE between patch tokens (any token order: CPE is permutation-equivariant).
    tokens = np.stack([np_patches(zi, p).reshape(-1, p * p) for zi in z])
    cpe = head(model.get_layer("cpe"))
    if axis == "batch":
        tokens = np_cpe(tokens.reshape(-1, p * p), *cpe).reshape(tokens.shape)
    else:
        tokens = np.stack([np_cpe(t, *cpe) for t in tokens])
    ch = x.shape[-1]
    z = np.stack([np_unpatches(t.reshape(ch, -1, p * p), x.shape[1:], p) for t in tokens])
    h = z
    for level in range(1, levels + 1):
        layer = model.get_layer(f"patch_bpc_{level}")
        if level == 1:
            y = np_patch_bpc(layer, h, p, axis)
        else:
            y = np_patch_bpc(layer, h.reshape(len(x), q, -1, 1), q, axis)
        y = np.concatenate([y.reshape(len(x), -1), c], axis=1)
        name = "bottleneck" if level == levels else f"squeeze_{level}"
        h = np_dense(y, model.get_layer(name))
    return np_decoder(model, np.concatenate([h, c], axis=1)).reshape(x.shape) * std + mean


def randomize(model, seed=0, scale=0.3):
    """Random weights everywhere (biases and slopes included), so every term is exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            new = [rng.normal(scale=scale, size=w.shape).astype("float32") for w in ws]
            if "lrrelu" in layer.name or layer.name == "decoder_expand":
                new[0] = np.abs(new[0]) + 0.5  # slopes live in [0, inf)
            layer.set_weights(new)


def images(n, shape, seed=0):
    return np.random.default_rng(seed).random((n,) + tuple(shape)).astype("float32")


def onehot(labels, k):
    return np.eye(k, dtype="float32")[labels]


# --- forward pass vs the references --------------------------------------------------------

@pytest.mark.parametrize("axis,reinject", [("batch", False), ("tokens", True)])
def test_simple_generator_matches_numpy(axis, reinject):
    shape = (5, 7, 1)  # odd sizes
    model = G.create_generator("simple", input_shape=shape, num_conditions=3, mix_units=12,
                               num_tokens=3, axis=axis, reinject_conditions=reinject)
    randomize(model)
    x, c = images(6, shape), onehot([0, 1, 2, 0, 1, 2], 3)
    expected = np_simple(model, x, c, axis, num_tokens=3, reinject=reinject)
    np.testing.assert_allclose(model([x, c]).numpy(), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("axis", ["batch", "tokens"])
def test_patchy_generator_matches_numpy(axis):
    shape = (8, 8, 2)
    model = G.create_generator("patchy", input_shape=shape, num_conditions=3, patch_size=4,
                               level_patch_size=2, levels=2, axis=axis)
    randomize(model, seed=1)
    x, c = images(5, shape, seed=2), onehot([2, 0, 1, 1, 0], 3)
    expected = np_patchy(model, x, c, axis, p=4, levels=2, q=2)
    np.testing.assert_allclose(model([x, c]).numpy(), expected, atol=1e-5, rtol=1e-4)


def test_patchy_widths_follow_compression_and_kolmogorov_arnold():
    model = G.create_generator("patchy", input_shape=(48, 48, 1), num_conditions=7, levels=3)
    # 2304 * 1/3 = 768 (a multiple of 8^2), 768 / 3 = 256; bottleneck = 7 one-hot units.
    assert model.get_layer("squeeze_1").units == 768
    assert model.get_layer("squeeze_2").units == 256
    assert model.get_layer("bottleneck").units == 7
    assert model.get_layer("patch_bpc_1").patch_size == 8  # 48 / 8 = a 6 x 6 grid
    # Decoder reads [z, c] (7 + 7 units): 2 * 14 + 1 hidden units (Eq. 10).
    assert model.get_layer("decoder_expand").units == 29
    simple = G.create_generator("simple", input_shape=(28, 28, 1), num_conditions=10)
    assert simple.get_layer("decoder_expand").units == 21  # 2 m + 1 with m = 10


# --- conditioning and batch semantics ------------------------------------------------------

@pytest.mark.parametrize("kind,axis", [("simple", "batch"), ("patchy", "tokens")])
def test_only_the_one_hot_changes_the_output(kind, axis):
    shape = (8, 8, 1)
    options = (dict(mix_units=16) if kind == "simple"
               else dict(patch_size=4, level_patch_size=2))
    model = G.create_generator(kind, input_shape=shape, num_conditions=4, axis=axis, **options)
    randomize(model, seed=3)
    x = images(4, shape, seed=4)
    a = G.generate(model, x, 1)
    np.testing.assert_array_equal(G.generate(model, x, 1), a)
    b = G.generate(model, x, 2)
    assert np.abs(a - b).max() > 1e-3, "changing the condition must change the image"
    # Changing one sample's label changes that sample (in batch mode the others may move too).
    c = G.generate(model, x, np.array([1, 1, 3, 1]))
    assert np.abs(c[2] - a[2]).max() > 1e-3


def test_tokens_mode_is_batch_invariant_and_batch_mode_is_not():
    shape = (8, 8, 1)
    x = images(6, shape, seed=5)
    tokens = G.create_generator("patchy", input_shape=shape, num_conditions=3, axis="tokens",
                                patch_size=4, level_patch_size=2)
    randomize(tokens, seed=6)
    full = G.generate(tokens, x, 1)
    np.testing.assert_allclose(G.generate(tokens, x, 1, batch_size=1), full, atol=1e-5)
    batch = G.create_generator("patchy", input_shape=shape, num_conditions=3, axis="batch",
                               patch_size=4, level_patch_size=2)
    randomize(batch, seed=6)
    full = G.generate(batch, x, 1)
    assert np.abs(G.generate(batch, x, 1, batch_size=3) - full).max() > 1e-4
    with pytest.raises(ValueError, match="batch_size"):
        G.generate(batch, x, 1, batch_size=1)


def test_multi_group_conditions():
    model = G.create_generator("simple", input_shape=(6, 6, 1), mix_units=8,
                               num_conditions={"emotion": 3, "subject": 2})
    assert G.condition_groups(model) == {"emotion": 3, "subject": 2}
    randomize(model, seed=7)
    x = images(4, (6, 6, 1))
    a = G.generate(model, x, {"emotion": 0, "subject": [0, 1, 0, 1]})
    b = G.generate(model, x, {"emotion": 0, "subject": [1, 1, 0, 1]})
    assert np.abs(a[0] - b[0]).max() > 1e-4
    with pytest.raises(ValueError, match="dict naming every group"):
        G.generate(model, x, 1)
    with pytest.raises(ValueError, match="missing"):
        G.generate(model, x, {"emotion": 1})
    grid = G.mutation_table(model, x[:2], group="emotion", fixed={"subject": [0, 1]}, zoom=1)
    assert grid.shape[:2] == G.grid_size(4, 2, (6, 6), zoom=1, pad=2)


def test_generate_keeps_the_caller_dtype_and_shape():
    model = G.create_generator("simple", input_shape=(6, 6, 1), num_conditions=2, mix_units=8)
    u8 = (images(3, (6, 6)) * 255).astype(np.uint8)  # grey without a channel axis
    out = G.generate(model, u8, 0)
    assert out.dtype == np.uint8 and out.shape == (3, 6, 6, 1)
    one = G.generate(model, images(1, (6, 6, 1))[0], [[0.0, 1.0]], batch_size=None)
    assert one.dtype == np.float32 and one.shape == (6, 6, 1)
    assert one.min() >= 0 and one.max() <= 1


@pytest.mark.parametrize("condition,match", [
    (5, r"labels must lie in \[0, 2\)"),
    (np.zeros((3, 4)), "one-hot rows of width 2"),
    ([0, 1], "2 labels for 3 images"),
])
def test_bad_conditions_are_named(condition, match):
    model = G.create_generator("simple", input_shape=(6, 6, 1), num_conditions=2, mix_units=8)
    with pytest.raises(ValueError, match=match):
        G.generate(model, images(3, (6, 6, 1)), condition)


def test_bad_image_shape_names_the_expected_shape():
    model = G.create_generator("simple", input_shape=(6, 6, 1), num_conditions=2, mix_units=8)
    with pytest.raises(ValueError, match=r"\(n, 6, 6, 1\)"):
        G.generate(model, images(3, (7, 6, 1)), 0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(kind="gan"), "kind must be one of"),
    (dict(kind="simple", patch_size=4), "unknown option"),
    (dict(kind="patchy", patch_size=5), "patch_size=5 must divide"),
    (dict(kind="patchy", compression=1.5), "compression must be"),
    (dict(kind="patchy", levels=0), "levels must be"),
    (dict(kind="simple", axis="rows"), "axis must be"),
    (dict(kind="simple", axis="tokens", mix_units=10, num_tokens=3), "num_tokens=3 must divide"),
    (dict(kind="simple", input_shape=(8, 8)), "input_shape must be"),
    (dict(kind="simple", num_conditions=0), "num_conditions"),
    (dict(kind="simple", num_conditions={"image": 3}), "group names"),
    (dict(kind="simple", bottleneck=-1), "bottleneck must be"),
])
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
    kwargs = {"input_shape": (8, 8, 1), "num_conditions": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        G.create_generator(**kwargs)


# --- the standardisation layers -------------------------------------------------------------

def test_standardization_layers_match_numpy_and_invert():
    x = images(3, (5, 4, 2), seed=8) * 3 + 1
    expected, mean, std = np_standardize(x)
    z = ImageStandardization()(x).numpy()
    np.testing.assert_allclose(z, expected, atol=1e-5)
    back = ImageDestandardization()([z, x]).numpy()
    np.testing.assert_allclose(back, x, atol=1e-5)
    y = images(3, (5, 4, 2), seed=9)
    np.testing.assert_allclose(ImageDestandardization()([y, x]).numpy(), y * std + mean,
                               atol=1e-5)


def test_flat_image_stays_finite():
    import tensorflow as tf

    x = tf.Variable(np.full((2, 4, 4, 1), 0.5, np.float32))
    with tf.GradientTape() as tape:
        y = ImageStandardization()(x)
        value = tf.reduce_sum(y * np.arange(32, dtype=np.float32).reshape(2, 4, 4, 1))
    grad = tape.gradient(value, x)
    assert np.all(y.numpy() == 0) and np.all(np.isfinite(grad.numpy()))


def test_standardization_harness_and_gradients():
    x = images(2, (3, 4, 1), seed=10)
    layer = run_layer_test(ImageStandardization, {"epsilon": 1e-3}, x,
                           expected_output_shape=(2, 3, 4, 1), run_training_check=False)
    check_gradients(layer, x)


def test_destandardization_gradients():
    import tensorflow as tf

    y = images(2, (6,), seed=11).astype(np.float64)
    ref = images(2, (6,), seed=12).astype(np.float64)
    layer = ImageDestandardization(dtype="float64")
    proj = np.random.default_rng(0).normal(size=y.shape)

    def value(r):
        return float(np.sum(layer([y, r]).numpy() * proj))

    r = tf.Variable(ref)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(layer([y, r]) * proj)
    np.testing.assert_allclose(tape.gradient(out, r).numpy(), numeric_gradient(value, ref),
                               atol=1e-6, rtol=1e-4)


def test_generator_input_gradient_matches_finite_differences():
    import tensorflow as tf

    keras.config.set_floatx("float64")
    try:
        model = G.create_generator("simple", input_shape=(3, 3, 1), num_conditions=2,
                                   mix_units=4)
        randomize(model, seed=13)
    finally:
        keras.config.set_floatx("float32")
    x = images(4, (3, 3, 1), seed=14).astype(np.float64)
    c = tf.constant(onehot([0, 1, 1, 0], 2).astype(np.float64))
    proj = np.random.default_rng(1).normal(size=x.shape)

    forward = tf.function(lambda xx: model([xx, c]))  # one trace for the 72 evaluations

    def value(xx):
        return float(np.sum(forward(tf.constant(xx)).numpy() * proj))

    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(model([xv, c]) * proj)
    np.testing.assert_allclose(tape.gradient(out, xv).numpy(), numeric_gradient(value, x),
                               atol=1e-5, rtol=1e-3)


# --- whole models: save/load, export, training ---------------------------------------------

@pytest.mark.parametrize("kind,options", [
    ("simple", dict(axis="batch", mix_units=16)),
    ("patchy", dict(axis="tokens", patch_size=4, level_patch_size=2)),
])
def test_generator_harness(kind, options):
    model = G.create_generator(kind, input_shape=(8, 8, 1), num_conditions=3, **options)
    x = [images(4, (8, 8, 1), seed=15), onehot([0, 1, 2, 1], 3)]
    run_model_test(model, x)


def test_patchy_batch_mode_saves_and_exports():
    from keras_fer.testing import check_export, check_saving

    model = G.create_generator("patchy", input_shape=(8, 8, 1), num_conditions=3,
                               patch_size=4, level_patch_size=2, axis="batch")
    x = [images(4, (8, 8, 1), seed=16), onehot([0, 1, 2, 1], 3)]
    restored = check_saving(model, x)
    assert G.condition_groups(restored) == {"condition": 3}
    check_export(model, x)


def test_tiny_training_run_reduces_reconstruction_loss(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(48) % 3
    # Three classes: a bright bar in a class-dependent row, plus noise.
    x = rng.random((48, 8, 8, 1)).astype(np.float32) * 0.2
    for i, y in enumerate(labels):
        x[i, 2 * y + 1, 1:7, 0] = 1.0
    model = G.create_generator("simple", input_shape=(8, 8, 1), num_conditions=3,
                               mix_units=16, reinject_conditions=True)
    tb = tmp_path / "tb"
    cb = G.MutationTableCallback(str(tb), x[:2], names=["a", "b", "c"], every=4,
                                 png_dir=str(tmp_path / "png"))
    history = G.train_generator(model, x, labels, epochs=8, batch_size=8, learning_rate=1e-2,
                                out_dir=str(tmp_path / "gen"), callbacks=[cb], verbose=0,
                                validation=(x[:8], labels[:8]))
    losses = [h["loss"] for h in history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert "val_loss" in history[-1]
    assert os.path.exists(tmp_path / "gen" / "generator.keras")
    assert sorted(os.listdir(tmp_path / "png")) == ["epoch_0004.png", "epoch_0008.png"]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tb))
    # Re-running the finished call resumes from the checkpoint and trains no further.
    again = G.train_generator(model, x, labels, epochs=8, batch_size=8,
                              out_dir=str(tmp_path / "gen"), verbose=0)
    assert len(again) == 8 and again[-1]["loss"] == history[-1]["loss"]


# --- the mutation table ----------------------------------------------------------------------

def test_mutation_grid_places_every_cell():
    rng = np.random.default_rng(0)
    originals = rng.integers(0, 256, (3, 4, 5, 1), dtype=np.uint8)
    generated = rng.integers(0, 256, (2, 3, 4, 5, 1), dtype=np.uint8)
    grid = G.mutation_grid(originals, generated, zoom=2, pad=1)
    assert grid.shape == (1 + 3 * (8 + 1), 1 + 3 * (10 + 1), 3)
    # Row 2 (condition 1), column 1: the zoomed image at its offset.
    top, left = 1 + 2 * 9, 1 + 1 * 11
    cell = np.repeat(np.repeat(generated[1, 1, :, :, 0], 2, 0), 2, 1)
    np.testing.assert_array_equal(grid[top:top + 8, left:left + 10, 0], cell)
    np.testing.assert_array_equal(grid[1:9, 1:11, 1], np.repeat(np.repeat(
        originals[0, :, :, 0], 2, 0), 2, 1))
    assert np.all(grid[0] == 255)  # padding is white


def test_mutation_table_png_has_the_grid_size(tmp_path):
    from PIL import Image

    model = G.create_generator("simple", input_shape=(6, 6, 1), num_conditions=4, mix_units=8)
    names = ["angry", "happy", "sad", "surprise"]
    path = tmp_path / "table.png"
    grid = G.mutation_table(model, images(5, (6, 6, 1)), names=names, path=str(path), zoom=3)
    height, width = G.grid_size(1 + 4, 5, (6, 6), zoom=3, pad=2, label_width=72)
    assert grid.shape == (height, width, 3)
    assert height == 2 + 5 * (18 + 2) and width == 72 + 2 + 5 * (18 + 2)
    with Image.open(path) as img:
        assert img.size == (width, height)
    with pytest.raises(ValueError, match="names must give one name per condition"):
        G.mutation_table(model, images(2, (6, 6, 1)), names=names[:3])


def test_dataset_arrays_reads_a_fer_dataset():
    from keras_fer.datasets.records import FERDataset, Record

    rng = np.random.default_rng(0)
    recs = [Record(source=f"r{i}", label=i % 2,
                   image=rng.integers(0, 256, (10, 12), dtype=np.uint8)) for i in range(5)]
    x, y = G.dataset_arrays(FERDataset("toy", recs, ("a", "b")), (10, 12))
    assert x.shape == (5, 10, 12, 1) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[3, ..., 0], recs[3].image)
    np.testing.assert_array_equal(y, [0, 1, 0, 1, 0])
