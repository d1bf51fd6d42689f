"""Learnable neuron-wise activations (paper 000, Eqs. 7-8) against NumPy references."""

import os
import tempfile

import numpy as np
import pytest

import keras

from keras_fer.layers import LrELU, LrLeakyReLU, LrReLU, LrReLUDense, SlopeClamp
from keras_fer.testing import check_gradients, run_layer_test


def away_from_zero(*shape, seed=0):
    """Inputs with |x| >= 0.2, so finite differences never straddle the kink at 0."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return x.astype("float32")


def set_slopes(layer, seed=0, low=0.1, high=0.9):
    """Distinct per-unit slopes in [low, high]; other weights (kernel, bias) random normal."""
    rng = np.random.default_rng(seed)
    weights = []
    for v in layer.weights:
        if v.constraint is not None:
            weights.append(rng.uniform(low, high, size=v.shape))
        else:
            weights.append(rng.normal(scale=0.5, size=v.shape))
    layer.set_weights([w.astype("float32") for w in weights])
    return [w.astype(np.float64) for w in weights]


# --- forward pass vs the equations ---------------------------------------------------------

def test_lrrelu_matches_eq7():
    x = away_from_zero(4, 3, 6)
    layer = LrReLU()
    layer(x)
    (a,) = set_slopes(layer)
    expected = np.maximum(a * x, 0.0)  # Eq. 7 as written: y = A (x) x, z = relu(y)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-6)


def test_lrrelu_default_is_plain_relu():
    x = away_from_zero(5, 4)
    np.testing.assert_allclose(LrReLU()(x).numpy(), np.maximum(x, 0.0))


def test_lrleakyrelu_matches_reference():
    x = away_from_zero(5, 6, seed=1)
    layer = LrLeakyReLU()
    layer(x)
    a, b = set_slopes(layer, seed=1)
    np.testing.assert_allclose(layer(x).numpy(), np.where(x >= 0, a * x, b * x), atol=1e-6)


def test_lrelu_matches_reference_and_saturates():
    x = away_from_zero(5, 6, seed=2)
    x[0] = -30.0
    x[1] = 80.0  # exp(80) overflows float32: must not leak into the positive branch
    layer = LrELU()
    layer(x)
    a, b = set_slopes(layer, seed=2)
    expected = np.where(x > 0, a * x, b * (np.exp(np.minimum(x, 0.0)) - 1.0))
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer(x).numpy()[0], -b, rtol=1e-6)


@pytest.mark.parametrize("per_connection", [False, True])
def test_lrrelu_dense_matches_eq8(per_connection):
    x = away_from_zero(4, 5, seed=3)
    layer = LrReLUDense(3, per_connection=per_connection)
    layer(x)
    a, w, b = set_slopes(layer, seed=3)
    if per_connection:
        # z_q = sum_p W_pq relu(A_pq x_p) + b_q, one slope per connection.
        expected = np.array([[sum(w[p, q] * max(a[p, q] * xi[p], 0.0) for p in range(5)) + b[q]
                              for q in range(3)] for xi in x])
    else:
        expected = np.maximum(a * x, 0.0) @ w + b  # z = W relu(A x) + b
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)


def test_zero_slope_switches_a_unit_off():
    x = away_from_zero(3, 4, seed=4)
    layer = LrLeakyReLU()
    layer(x)
    layer.set_weights([np.array([1.0, 0.0, 1.0, 1.0], "float32"), np.zeros(4, "float32")])
    y = layer(x).numpy()
    np.testing.assert_array_equal(y[:, 1], 0.0)
    np.testing.assert_allclose(y[:, 0], np.maximum(x[:, 0], 0.0))


# --- the constraint --------------------------------------------------------------------------

def fit_one_step(layer, x, target, lr):
    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    model.fit(x, np.full(x.shape[:-1] + (model.output_shape[-1],), target, "float32"),
              epochs=1, batch_size=len(x), verbose=0)


@pytest.mark.parametrize("cls", [LrReLU, LrLeakyReLU, LrELU])
def test_constraint_clamps_to_slope_after_update(cls):
    x = np.abs(away_from_zero(8, 4, seed=5))  # positive side only: A gets the gradient
    layer = cls(slope=0.5, initial_value=0.4)
    fit_one_step(layer, x, target=100.0, lr=10.0)  # pushes A far above 0.5
    np.testing.assert_array_equal(layer.a.numpy(), 0.5)
    fit_one_step(layer, x, target=-100.0, lr=10.0)  # and far below 0
    np.testing.assert_array_equal(layer.a.numpy(), 0.0)


def test_zero_slope_only_bounds_below():
    x = np.abs(away_from_zero(8, 4, seed=6))
    layer = LrReLU(slope=0)
    fit_one_step(layer, x, target=100.0, lr=1.0)
    assert np.all(layer.a.numpy() > 1.0)
    fit_one_step(layer, x, target=-100.0, lr=10.0)
    np.testing.assert_array_equal(layer.a.numpy(), 0.0)


def test_negative_side_slope_is_clamped():
    x = -np.abs(away_from_zero(8, 4, seed=7))  # negative side only: B gets the gradient
    layer = LrLeakyReLU(negative_slope=0.3)
    fit_one_step(layer, x, target=-100.0, lr=10.0)  # B x -> -100 pushes B up
    np.testing.assert_array_equal(layer.b.numpy(), np.float32(0.3))
    np.testing.assert_array_equal(layer.a.numpy(), 1.0)  # no gradient on the positive side


def test_lrrelu_dense_slopes_are_clamped():
    x = np.abs(away_from_zero(8, 4, seed=8))
    layer = LrReLUDense(2, slope=1.0, per_connection=True, kernel_initializer="ones")
    fit_one_step(layer, x, target=100.0, lr=10.0)
    np.testing.assert_array_equal(layer.a.numpy(), 1.0)


def test_slope_clamp_direct_and_config():
    w = np.array([-1.0, 0.2, 3.0], "float32")
    np.testing.assert_array_equal(SlopeClamp(0.5)(w).numpy(), np.float32([0.0, 0.2, 0.5]))
    np.testing.assert_array_equal(SlopeClamp()(w).numpy(), np.float32([0.0, 0.2, 3.0]))
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(
        SlopeClamp(0.5)))
    assert isinstance(revived, SlopeClamp) and revived.slope == 0.5


def test_constraint_survives_keras_save():
    model = keras.Sequential([keras.Input((3,)), LrLeakyReLU(slope=2.0, negative_slope=0.5)])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        layer = keras.saving.load_model(path).layers[-1]
    assert isinstance(layer.a.constraint, SlopeClamp) and layer.a.constraint.slope == 2.0
    assert layer.b.constraint.slope == 0.5


# --- the shared harness, gradients -----------------------------------------------------------

@pytest.mark.parametrize("cls,kwargs,x,shape", [
    (LrReLU, {"slope": 2.0, "initial_value": 0.5}, away_from_zero(4, 6), (4, 6)),
    (LrLeakyReLU, {"slope": 0.0, "initial_value": 1.0, "negative_slope": 0.5,
                   "negative_initial_value": 0.2}, away_from_zero(2, 3, 6), (2, 3, 6)),
    (LrELU, {"slope": 0.0, "initial_value": 1.0, "alpha": 2.0, "initial_alpha": 1.0},
     away_from_zero(4, 6), (4, 6)),
    (LrReLUDense, {"units": 3, "slope": 0.0, "initial_value": 1.0, "per_connection": True,
                   "kernel_regularizer": "l2"}, away_from_zero(4, 6), (4, 3)),
    (LrReLUDense, {"units": 3, "use_bias": False}, away_from_zero(1, 6), (1, 3)),
])
def test_run_layer_test(cls, kwargs, x, shape):
    run_layer_test(cls, kwargs, x, expected_output_shape=shape)


@pytest.mark.parametrize("layer_fn", [
    lambda: LrReLU(),
    lambda: LrLeakyReLU(),
    lambda: LrELU(),
    lambda: LrReLUDense(2),
    lambda: LrReLUDense(2, per_connection=True),
])
def test_gradients(layer_fn):
    x = away_from_zero(3, 4, seed=9)
    layer = layer_fn()
    layer(x)
    set_slopes(layer, seed=10)
    check_gradients(layer, x, eps=1e-4, atol=1e-6, rtol=1e-5)


def test_parameter_counts():
    assert LrReLU()(np.zeros((1, 5), "float32")) is not None
    layer = LrReLUDense(4)
    layer.build((None, 5))
    assert layer.count_params() == 5 + 5 * 4 + 4
    layer = LrReLUDense(4, per_connection=True, use_bias=False)
    layer.build((None, 5))
    assert layer.count_params() == 2 * 5 * 4


# --- argument and shape errors ---------------------------------------------------------------

def test_bad_arguments():
    with pytest.raises(ValueError, match="slope must be a number >= 0.*-1"):
        LrReLU(slope=-1)
    with pytest.raises(ValueError, match="initial_value must be <= slope"):
        LrReLU(slope=0.5, initial_value=1.0)
    with pytest.raises(ValueError, match="initial_value must be a number >= 0"):
        LrReLU(initial_value=-0.1)
    with pytest.raises(ValueError, match="negative_slope"):
        LrLeakyReLU(negative_slope=-0.2)
    with pytest.raises(ValueError, match="initial_alpha must be <= alpha"):
        LrELU(alpha=0.5, initial_alpha=1.0)
    with pytest.raises(ValueError, match="units must be a positive integer"):
        LrReLUDense(0)
    with pytest.raises(ValueError, match="slope"):
        SlopeClamp(-1)


def test_unknown_unit_count_and_wrong_width():
    with pytest.raises(ValueError, match=r"\(\.\.\., units\)"):
        LrReLU().build((None, None))
    layer = LrReLU()
    layer(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError):
        layer(np.zeros((2, 5), "float32"))
