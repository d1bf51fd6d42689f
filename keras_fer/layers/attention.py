"""Cosine-similarity attention heads of the Batch Transformer (seed paper 000, Eqs. 2-5).

Two heads share one cosine-similarity kernel (:func:`cosine_similarity_matrix`):

* :class:`CosineAttention` ("Cosine Primary Element", CPE, Eq. 2) attends between elements
  (rows of ``X``): ``Y = softmax(B) X`` with ``B[i, j] = cos(q_i, k_j)``.
* :class:`BatchAttention` ("Batch Primary Components", BPC, Eq. 3) attends between feature
  dimensions (columns of ``X``): ``Y = X softmax(B)`` with ``B[a, b] = cos(Q[:, a], K[:, b])``.
* :class:`PatchBatchAttention` ("Patchy BPC", Eq. 4) cuts an image into patches and runs an
  independent BPC head on each patch subspace, joining the results by direct sum.

In all three ``K = X Wk + bk`` and ``Q = X Wq + bq`` with square ``(d, d)`` kernels acting on the
feature axis (optionally ``tanh`` of each, Eq. 5). There is no value projection: the paper
leaves ``V`` outside the head, so the value is ``X`` itself. No ``1/sqrt(d)`` scale is needed
because cosine similarity is already bounded in ``[-1, 1]`` (the paper's motivation for Eq. 2).

What ``n`` is (the ``axis`` argument)
-------------------------------------
The paper writes every head for a matrix ``X`` of ``n`` rows and ``d`` columns. In the author's
own code (ANNLibPy ``cosSimAttention.py``, MATLAB ANNLib) ``n`` is the training mini-batch, by
analogy with Batch Normalisation: ``axis="batch"`` reproduces that, so a sample's output depends
on the other samples in its batch (like BatchNorm in training mode, but also at inference).
``axis="tokens"`` takes ``n`` from a token axis inside each sample instead, which makes the layer
batch-invariant and serving deterministic.
"""

import keras
from keras import ops

_AXES = ("tokens", "batch")


def _check_axis(axis):
    if axis not in _AXES:
        raise ValueError(f'axis must be "tokens" or "batch", got {axis!r}')
    return axis


def _check_epsilon(epsilon):
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or not epsilon > 0:
        raise ValueError(f"epsilon must be a number > 0, got {epsilon!r}")
    return float(epsilon)


def _clamped_norm(x, epsilon):
    # sqrt(max(|x|^2, eps^2)) equals max(|x|, eps) but keeps the gradient finite at x = 0,
    # where sqrt itself has an infinite derivative.
    return ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), epsilon**2))


def cosine_similarity_matrix(a, b, epsilon=1e-6):
    """Cosine similarity between the rows of ``a`` (..., n, m) and of ``b`` (..., l, m).

    Returns ``S`` of shape (..., n, l) with ``S[i, j] = <a_i, b_j> / (|a_i| |b_j|)``: the
    numerator and the ``D`` denominator of Eqs. 2-3, computed by normalising the rows first
    (one matmul instead of two). Each norm is clamped below by ``epsilon``, so a zero row
    gives similarity 0 (not NaN) and finite gradients. Half-precision inputs are promoted to
    float32 here, because ``epsilon**2`` underflows in float16.
    """
    dtype = keras.backend.standardize_dtype(a.dtype)
    if dtype in ("float16", "bfloat16"):
        a, b = ops.cast(a, "float32"), ops.cast(b, "float32")
    a = a / _clamped_norm(a, epsilon)
    b = b / _clamped_norm(b, epsilon)
    return ops.cast(ops.matmul(a, ops.swapaxes(b, -1, -2)), dtype)


def primary_element_attention(x, q, k, epsilon=1e-6):
    """CPE (Eq. 2): ``softmax(B) X`` with ``B[i, j] = cos(q_i, k_j)`` over the rows (..., n, d).

    The softmax runs over the key index ``j``, so each output row is a convex combination of
    the input rows.
    """
    scores = cosine_similarity_matrix(q, k, epsilon)
    return ops.matmul(ops.softmax(scores, axis=-1), x)


def primary_component_attention(x, q, k, epsilon=1e-6):
    """BPC (Eq. 3): ``X softmax(B)`` with ``B[a, b] = cos(Q[:, a], K[:, b])`` for (..., n, d).

    ``B`` is (..., d, d); the softmax runs over its first axis ``a`` (each column sums to 1),
    so output feature ``b`` is a convex combination of the input features of the same row.
    """
    scores = cosine_similarity_matrix(ops.swapaxes(q, -1, -2), ops.swapaxes(k, -1, -2), epsilon)
    return ops.matmul(x, ops.softmax(scores, axis=-2))


def _per_head_initializer(initializer):
    """Fans of a (heads, d, d) kernel taken from its last two axes, as for one (d, d) head.

    Keras otherwise treats the head axis as a receptive field and shrinks Glorot/He scales by
    sqrt(heads), so every head would start far smaller than a stand-alone BatchAttention.
    """
    if isinstance(initializer, keras.initializers.VarianceScaling) and (
            initializer.input_axes is None and initializer.output_axes is None):
        config = initializer.get_config()
        config.update(input_axes=[1], output_axes=[2])
        return type(initializer).from_config(config)
    return initializer


class _CosineAttentionBase(keras.layers.Layer):
    """Shared arguments, weights and Q/K projections of the cosine attention heads."""

    def __init__(
        self,
        axis="tokens",
        use_tanh=False,
        use_bias=True,
        epsilon=1e-6,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.axis = _check_axis(axis)
        self.use_tanh = bool(use_tanh)
        self.use_bias = bool(use_bias)
        self.epsilon = _check_epsilon(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def _add_projections(self, dim, heads=None):
        """Creates Wq, Wk of shape (dim, dim), or (heads, dim, dim), and their biases."""
        prefix = () if heads is None else (heads,)
        kernel_init = (self.kernel_initializer if heads is None
                       else _per_head_initializer(self.kernel_initializer))
        for role in ("query", "key"):
            setattr(self, f"{role}_kernel", self.add_weight(
                name=f"{role}_kernel", shape=prefix + (dim, dim), initializer=kernel_init,
                regularizer=self.kernel_regularizer))
            bias = None
            if self.use_bias:
                bias = self.add_weight(
                    name=f"{role}_bias", shape=prefix + (dim,),
                    initializer=self.bias_initializer, regularizer=self.bias_regularizer)
            setattr(self, f"{role}_bias", bias)

    def _project(self, x, kernel, bias, equation=None):
        y = ops.matmul(x, kernel) if equation is None else ops.einsum(equation, x, kernel)
        if bias is not None:
            # Per-head biases (heads, d) line up with x's (..., heads, n, d) layout.
            y = y + (bias if equation is None else ops.expand_dims(bias, -2))
        return ops.tanh(y) if self.use_tanh else y

    def _queries_keys(self, x, equation=None):
        return (self._project(x, self.query_kernel, self.query_bias, equation),
                self._project(x, self.key_kernel, self.key_bias, equation))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            axis=self.axis,
            use_tanh=self.use_tanh,
            use_bias=self.use_bias,
            epsilon=self.epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
        )
        return config


class _SingleHeadCosineAttention(_CosineAttentionBase):
    """One cosine head over (batch, n, d) tokens or over the (batch, ..., d) mini-batch."""

    _attend = None  # the head's equation, set by subclasses

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        name = type(self).__name__
        if self.axis == "tokens" and len(input_shape) != 3:
            raise ValueError(
                f'{name} with axis="tokens" expects input of shape (batch, n, d) with n '
                f"tokens per sample (rank 3), got shape {input_shape}. Use axis=\"batch\" to "
                "attend across the samples of a (batch, d) mini-batch.")
        if self.axis == "batch" and len(input_shape) < 2:
            raise ValueError(
                f'{name} with axis="batch" expects input of shape (batch, d) or '
                f"(batch, ..., d), got shape {input_shape}")
        dim = input_shape[-1]
        if dim is None:
            raise ValueError(f"{name} needs a known feature size d (last axis), got shape "
                             f"{input_shape}")
        self._add_projections(dim)
        rank = {"ndim": 3} if self.axis == "tokens" else {"min_ndim": 2}
        self.input_spec = keras.layers.InputSpec(axes={-1: dim}, **rank)

    def call(self, inputs):
        if self.axis == "tokens":
            q, k = self._queries_keys(inputs)
            return self._attend(inputs, q, k, self.epsilon)
        # Every vector of the mini-batch (all leading axes) is one of the n rows.
        x = ops.reshape(inputs, (-1, inputs.shape[-1]))
        q, k = self._queries_keys(x)
        return ops.reshape(self._attend(x, q, k, self.epsilon), ops.shape(inputs))


@keras.saving.register_keras_serializable(package="keras_fer")
class CosineAttention(_SingleHeadCosineAttention):
    """Cosine Primary Element attention (CPE, paper 000 Eq. 2; tanh variant Eq. 5).

    For ``X`` of shape (n, d): ``K = X Wk + bk``, ``Q = X Wq + bq`` (``tanh`` of each when
    ``use_tanh``), ``B[i, j] = <q_i, k_j> / (|q_i| |k_j|)`` (norms clamped below by
    ``epsilon``), softmax over the key axis ``j``, ``Y = softmax(B) X``. The value is ``X``
    itself (no ``V`` projection), so the output keeps the input's shape and each output row is
    a convex combination of input rows.

    The author's code (``cosPeTransformer``) takes the softmax of ``B^T``, i.e. it swaps the
    roles of ``Wq`` and ``Wk``; as both are learned with the same initialisation this is a
    relabelling of the weights, and we follow the SPEC's ``B[i, j] = cos(q_i, k_j)``.

    Args:
        axis: ``"tokens"``: input (batch, n, d), attention between the n tokens of each sample;
            batch-invariant. ``"batch"``: the author's semantics, attention between the samples
            of the mini-batch; input (batch, d), or (batch, ..., d) where every vector of the
            batch (all leading axes flattened) is one row, so ``n = batch * ...``. The output
            then depends on batch composition. A batch of one gives a 1 x 1 softmax equal to 1,
            so ``Y = X`` exactly (the layer is the identity), whatever the weights.
        use_tanh: apply ``tanh`` to ``K`` and ``Q`` (Eq. 5).
        use_bias: add ``bk``, ``bq``.
        epsilon: lower clamp for every norm; a zero query/key gives similarity 0.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer: for
            ``Wq``, ``Wk`` (d, d) and ``bq``, ``bk`` (d,).
    """

    _attend = staticmethod(primary_element_attention)


@keras.saving.register_keras_serializable(package="keras_fer")
class BatchAttention(_SingleHeadCosineAttention):
    """Batch Primary Components attention (BPC, paper 000 Eq. 3; tanh variant Eq. 5).

    Attention between feature dimensions: for ``X`` of shape (n, d), ``K = X Wk + bk``,
    ``Q = X Wq + bq`` (``tanh`` of each when ``use_tanh``), the columns are compared:
    ``B[a, b] = <Q[:, a], K[:, b]> / (|Q[:, a]| |K[:, b]|)`` (d x d, norms clamped below by
    ``epsilon``), softmax over the first axis ``a`` (columns sum to 1), ``Y = X softmax(B)``.
    Each output feature is a convex combination of the input features of the same sample,
    weighted by how well the feature's query column matches the key column across the n rows:
    a soft feature selection, which is what the paper uses it for in the encoder.

    Args:
        axis: ``"tokens"``: input (batch, n, d); the column statistics run over the n tokens of
            each sample (batch-invariant). ``"batch"``: the author's semantics (ANNLibPy
            ``cosPcTransformer``), the columns run over the mini-batch: input (batch, d), or
            (batch, ..., d) with all leading axes flattened into the n rows. Outputs then depend
            on batch composition. With a batch of one every column is a single number, so
            ``B[a, b] = q_a k_b / (|q_a| |k_b|) = sign(q_a) sign(k_b)`` (smaller in magnitude
            where ``|q_a|`` or ``|k_b|`` is below ``epsilon``, 0 for an exact zero): the weights
            depend only on sign agreement. Column ``b`` puts
            ``e / Z`` on every feature whose query sign agrees with ``sign(k_b)`` and ``e^-1 / Z``
            on the others (``Z = p e + (d - p) / e``, p agreeing features), so
            ``y_b = sum_a x_a softmax_a(sign(q_a) sign(k_b))``. The same holds in tokens mode
            for a sample with a single token.
        use_tanh: apply ``tanh`` to ``K`` and ``Q`` (Eq. 5).
        use_bias: add ``bk``, ``bq``.
        epsilon: lower clamp for every column norm; a zero column gives similarity 0.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer: for
            ``Wq``, ``Wk`` (d, d) and ``bq``, ``bk`` (d,).
    """

    _attend = staticmethod(primary_component_attention)


@keras.saving.register_keras_serializable(package="keras_fer")
class PatchBatchAttention(_CosineAttentionBase):
    """Patchy BPC (paper 000 Eq. 4): independent BPC heads on the patches of an image.

    Input (batch, H, W, C). Every channel is cut into non-overlapping ``patch_size`` x
    ``patch_size`` patches, giving ``G = (H / p) (W / p)`` patches per channel of
    ``d = p * p`` values (row-major inside the patch). This is the quotient map ``pi`` of Eq. 4;
    each subspace is transformed by its own BPC head (Eq. 3, own ``Wq``, ``Wk`` (d, d) and
    biases), and the head outputs are put back in place (the direct sum), so the output has the
    input's shape. The heads run vectorised as one einsum over a head axis.

    The paper's BookClub encoder (section 5) reads "5 x 5 patches for 3 channels ... n = 75
    20 x 20 BPC Transformers" for a 100 x 100 x 3 image: a 5 x 5 grid of 20 x 20-pixel patches
    per channel, i.e. ``PatchBatchAttention(20, axis="batch")`` here: 75 heads of d = 400,
    2 * 75 * (400^2 + 400) = 24,060,000 weights. The author's MATLAB layer
    (``residualVis5x5x3CosPcTransformerLayer``, called with patch sides 20, 20) confirms 25
    heads per colour channel with 400 x 400 kernels. The paper's "m = 3000" does not match
    100 * 100 * 3 = 30,000 values; we read it as a typo.

    Args:
        patch_size: side p of the square patches; H and W must be multiples of it.
        axis: ``"batch"`` (the paper's configuration): one head per (channel, patch position),
            ``C * G`` heads; each head's n rows are the samples of the mini-batch, so outputs
            depend on batch composition (a batch of one gives the sign-pattern weights described
            in :class:`BatchAttention`). ``"tokens"`` (the default, as for the other heads, so
            that serving is deterministic unless asked otherwise): batch-invariant. A sample has
            only one vector per (channel, position), so the n rows must come from inside the
            sample: the tokens are the G patches of a channel, and there is one head per
            channel (``C`` heads, weights shared across patch positions as in a ViT's patch
            embedding). Each head then weighs the p * p pixel positions of a patch by their
            statistics over the image's patches. An image that is a single patch (G = 1) gives
            the sign-pattern case.
        use_tanh, use_bias, epsilon, kernel_initializer, bias_initializer, kernel_regularizer,
            bias_regularizer: as in :class:`BatchAttention`, per head. Variance-scaling
            initialisers (the Glorot default) take their fans from one head's (d, d) kernel.

    Heads are ordered channel-major (head ``c * G + i * (W / p) + j`` is channel c, patch row
    i, patch column j), the order of the author's layer (25 red heads, then green, then blue).
    """

    def __init__(self, patch_size, axis="tokens", **kwargs):
        super().__init__(axis=axis, **kwargs)
        if (not isinstance(patch_size, int) or isinstance(patch_size, bool)
                or patch_size < 1):
            raise ValueError(f"patch_size must be a positive integer, got {patch_size!r}")
        self.patch_size = patch_size

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        p = self.patch_size
        if len(input_shape) != 4 or any(s is None for s in input_shape[1:]):
            raise ValueError(
                "PatchBatchAttention expects images of shape (batch, H, W, C) with known H, W, "
                f"C, got shape {input_shape}")
        height, width, channels = input_shape[1:]
        if height % p or width % p:
            raise ValueError(
                f"patch_size={p} must divide the image height and width, got input shape "
                f"{input_shape} (H={height}, W={width})")
        self.grid = (height // p, width // p)
        grid_cells = self.grid[0] * self.grid[1]
        self.num_heads = channels if self.axis == "tokens" else channels * grid_cells
        self._add_projections(p * p, heads=self.num_heads)
        self.input_spec = keras.layers.InputSpec(shape=(None,) + input_shape[1:])

    def _to_patches(self, x):
        """(batch, H, W, C) -> (batch, C, G, p * p), patches row-major, pixels row-major."""
        (gh, gw), p, channels = self.grid, self.patch_size, ops.shape(x)[-1]
        x = ops.reshape(x, (-1, gh, p, gw, p, channels))
        x = ops.transpose(x, (0, 5, 1, 3, 2, 4))
        return ops.reshape(x, (-1, channels, gh * gw, p * p))

    def _from_patches(self, x, shape):
        (gh, gw), p, channels = self.grid, self.patch_size, shape[-1]
        x = ops.reshape(x, (-1, channels, gh, gw, p, p))
        x = ops.transpose(x, (0, 2, 4, 3, 5, 1))
        return ops.reshape(x, shape)

    def call(self, inputs):
        patches = self._to_patches(inputs)
        if self.axis == "tokens":
            # (batch, heads=C, n=G, d): one head per channel, the patches are the rows.
            x = patches
        else:
            # (1, heads=C*G, n=batch, d): one head per patch, the mini-batch gives the rows.
            x = ops.reshape(patches, (-1, self.num_heads, self.patch_size**2))
            x = ops.expand_dims(ops.transpose(x, (1, 0, 2)), 0)
        q, k = self._queries_keys(x, equation="bhnd,hde->bhne")
        y = primary_component_attention(x, q, k, self.epsilon)
        if self.axis == "batch":
            y = ops.transpose(ops.squeeze(y, 0), (1, 0, 2))
        return self._from_patches(y, ops.shape(inputs))

    def get_config(self):
        config = super().get_config()
        config.update(patch_size=self.patch_size)
        return config
