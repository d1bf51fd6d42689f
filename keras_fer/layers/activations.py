"""Plasticity-learning neuron-wise activations of the Batch Transformer paper (000, Eqs. 7-8).

Instead of one constant slope for a whole layer (Eq. 6), every unit ``i`` of the last axis
learns its own slope ``A_i`` (Eq. 7). The slopes are kept in ``[0, slope]`` (or ``>= 0`` when
``slope`` is 0) by :class:`SlopeClamp`, a Keras constraint the optimiser applies after every
update, as the author's code clamps them in place before each forward pass. Keeping ``A >= 0``
is what lets a unit switch itself off (``A_i = 0``) but never flip its sign; the decoder uses
this "to further disable secondary dimensions" of the bottleneck.
"""

import keras
from keras import ops


def _check_bound(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0 (0 means no upper bound), got {value!r}")
    return float(value)


def _check_initial(name, value, bound_name, bound):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if bound > 0 and value > bound:
        raise ValueError(f"{name} must be <= {bound_name}={bound}, got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="keras_fer")
class SlopeClamp(keras.constraints.Constraint):
    """Clamps a weight to ``[0, slope]``, or to ``[0, inf)`` when ``slope`` is 0.

    The projection step of the learnable activations: Keras applies it to the variable right
    after each optimiser update.
    """

    def __init__(self, slope=0.0):
        self.slope = _check_bound("slope", slope)

    def __call__(self, w):
        w = ops.maximum(w, ops.zeros_like(w))
        if self.slope > 0:
            w = ops.minimum(w, ops.full_like(w, self.slope))
        return w

    def get_config(self):
        return {"slope": self.slope}


class _LearnableSlopes(keras.layers.Layer):
    """Shared helpers: the input's unit count (pinned in the input spec), clamped slopes."""

    def _input_units(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 1 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} needs input of shape (..., units) with a "
                             f"known last axis, got shape {input_shape}")
        self.input_spec = keras.layers.InputSpec(min_ndim=1, axes={-1: input_shape[-1]})
        return input_shape[-1]

    def _add_slope(self, name, shape, initial_value, slope):
        return self.add_weight(
            name=name, shape=shape, initializer=keras.initializers.Constant(initial_value),
            constraint=SlopeClamp(slope))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="keras_fer")
class LrReLU(_LearnableSlopes):
    """Learning ReLU (paper 000 Eq. 7): ``z = A * relu(x)``, one learnable ``A_i`` per unit.

    The paper writes ``y = A (x) x, z = relu(y)``; because :class:`SlopeClamp` keeps ``A >= 0``,
    ``relu(A x) = A relu(x)``, and we compute the latter, which is also what the author's code
    does. ``A`` runs over the last axis of the input.

    Args:
        slope: upper bound for ``A`` (clamped to ``[0, slope]`` after every update); 0 means only
            ``A >= 0``. Must be >= 0.
        initial_value: the value every ``A_i`` starts from (default 1.0: a plain ReLU); must lie
            in ``[0, slope]`` when ``slope > 0``.
    """

    def __init__(self, slope=0.0, initial_value=1.0, **kwargs):
        super().__init__(**kwargs)
        self.slope = _check_bound("slope", slope)
        self.initial_value = _check_initial("initial_value", initial_value, "slope", self.slope)

    def build(self, input_shape):
        self.a = self._add_slope("a", (self._input_units(input_shape),), self.initial_value,
                                 self.slope)

    def call(self, inputs):
        return self.a * ops.relu(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(slope=self.slope, initial_value=self.initial_value)
        return config


@keras.saving.register_keras_serializable(package="keras_fer")
class LrLeakyReLU(_LearnableSlopes):
    """Learning leaky ReLU: ``z = A * x`` for ``x >= 0`` and ``B * x`` for ``x < 0``.

    A leaky variant of Eq. 7 (the author's ``LrLReLU``): a second per-unit vector ``B`` learns
    the negative-side slope. Both are clamped to ``[0, bound]`` (``>= 0`` for bound 0), so
    every unit stays monotone non-decreasing.

    Args:
        slope, initial_value: bound and start value of ``A``, as in :class:`LrReLU`.
        negative_slope, negative_initial_value: bound and start value of ``B`` (default start
            0.1, the usual leaky slope scale; the author draws it uniformly from [0, 0.1]).
            ``negative_slope`` is an upper bound, not the slope itself (unlike Keras'
            ``LeakyReLU``), matching ``slope``.
    """

    def __init__(self, slope=0.0, initial_value=1.0, negative_slope=0.0,
                 negative_initial_value=0.1, **kwargs):
        super().__init__(**kwargs)
        self.slope = _check_bound("slope", slope)
        self.initial_value = _check_initial("initial_value", initial_value, "slope", self.slope)
        self.negative_slope = _check_bound("negative_slope", negative_slope)
        self.negative_initial_value = _check_initial(
            "negative_initial_value", negative_initial_value, "negative_slope",
            self.negative_slope)

    def build(self, input_shape):
        units = self._input_units(input_shape)
        self.a = self._add_slope("a", (units,), self.initial_value, self.slope)
        self.b = self._add_slope("b", (units,), self.negative_initial_value, self.negative_slope)

    def call(self, inputs):
        return self.a * ops.relu(inputs) - self.b * ops.relu(-inputs)

    def get_config(self):
        config = super().get_config()
        config.update(slope=self.slope, initial_value=self.initial_value,
                      negative_slope=self.negative_slope,
                      negative_initial_value=self.negative_initial_value)
        return config


@keras.saving.register_keras_serializable(package="keras_fer")
class LrELU(_LearnableSlopes):
    """Learning ELU (exponential tail): ``z = A * x`` for ``x > 0``, ``B * (exp(x) - 1)`` else.

    The author's ``LrELU``: per-unit ``A`` (linear side, as in Eq. 7) and ``B`` (the scale of
    the saturating tail, the ``alpha`` of ELU), both clamped to ``[0, bound]``. The tail tends
    to ``-B`` for very negative inputs. ``exp`` is evaluated at ``min(x, 0)`` so large positive
    inputs cannot overflow into ``inf * 0 = NaN`` gradients. The function is continuous at 0;
    its slope there jumps from ``B`` to ``A`` unless they are equal.

    Args:
        slope, initial_value: bound and start value of ``A``, as in :class:`LrReLU`.
        alpha, initial_alpha: bound (0: only ``>= 0``) and start value of ``B`` (default 1.0,
            the standard ELU).
    """

    def __init__(self, slope=0.0, initial_value=1.0, alpha=0.0, initial_alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.slope = _check_bound("slope", slope)
        self.initial_value = _check_initial("initial_value", initial_value, "slope", self.slope)
        self.alpha = _check_bound("alpha", alpha)
        self.initial_alpha = _check_initial("initial_alpha", initial_alpha, "alpha", self.alpha)

    def build(self, input_shape):
        units = self._input_units(input_shape)
        self.a = self._add_slope("a", (units,), self.initial_value, self.slope)
        self.b = self._add_slope("b", (units,), self.initial_alpha, self.alpha)

    def call(self, inputs):
        tail = ops.exp(ops.minimum(inputs, ops.zeros_like(inputs))) - 1.0
        return self.a * ops.relu(inputs) + self.b * tail

    def get_config(self):
        config = super().get_config()
        config.update(slope=self.slope, initial_value=self.initial_value, alpha=self.alpha,
                      initial_alpha=self.initial_alpha)
        return config


@keras.saving.register_keras_serializable(package="keras_fer")
class LrReLUDense(_LearnableSlopes):
    """Learning ReLU fused with a dense layer (paper 000 Eq. 8): ``z = W relu(A x) + b``.

    In row-vector form ``z = relu(x) @ (A[:, None] * W) + b`` (using ``A >= 0``). The paper uses
    it to emulate the inner functions ``phi_qp`` of the Kolmogorov-Arnold representation, which
    are indexed by both the input ``p`` and the output ``q``. With the default per-unit ``A``
    (shape (d,), as Eq. 8 writes it) the product ``A[:, None] * W`` is only a re-scaling of the
    kernel's rows, constrained to be non-negative; ``per_connection=True`` gives every
    connection its own slope, ``A`` of shape (d, units), ``z = relu(x) @ (A * W) + b``, which is
    what the author's MATLAB ``LrReLUFCLayer`` implements.

    Args:
        units: output width.
        slope, initial_value: bound and start value of ``A``, as in :class:`LrReLU`.
        per_connection: one slope per (input, output) pair instead of per input unit.
        use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer:
            as in ``keras.layers.Dense``.
    """

    def __init__(self, units, slope=0.0, initial_value=1.0, per_connection=False, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"units must be a positive integer, got {units!r}")
        self.units = units
        self.slope = _check_bound("slope", slope)
        self.initial_value = _check_initial("initial_value", initial_value, "slope", self.slope)
        self.per_connection = bool(per_connection)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        dim = self._input_units(input_shape)
        shape = (dim, self.units) if self.per_connection else (dim,)
        self.a = self._add_slope("a", shape, self.initial_value, self.slope)
        self.kernel = self.add_weight(
            name="kernel", shape=(dim, self.units), initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.units,), initializer=self.bias_initializer,
                regularizer=self.bias_regularizer)

    def call(self, inputs):
        a = self.a if self.per_connection else ops.expand_dims(self.a, -1)
        z = ops.matmul(ops.relu(inputs), a * self.kernel)
        return z if self.bias is None else z + self.bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, slope=self.slope, initial_value=self.initial_value,
            per_connection=self.per_connection, use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
        )
        return config
