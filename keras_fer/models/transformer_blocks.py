"""Building blocks shared by our own vision transformers (ConViT, CrossViT, hybrid ViT, Swin).

Each block computes what its timm counterpart computes, with weights laid out so a timm
state dict copies in by transposition only (``keras_fer.models.timm_convert``):

- ``MultiHeadSelfAttention``: ``softmax(q k^T / sqrt(d_h)) v`` with one fused ``qkv`` projection,
  as in ViT (Dosovitskiy et al. 2021, Eq. 2-3) and timm's ``Attention``.
- ``Mlp``: ``fc2(gelu(fc1(x)))`` with the exact (erf) GELU, ViT Eq. 3.
- ``TransformerBlock``: pre-norm residual block ``x + attn(LN(x))``, then ``x + mlp(LN(x))``,
  with stochastic depth (``DropPath``) on both branches.
- ``PatchEmbedding``: non-overlapping ``patch_size`` convolution, ViT Eq. 1.
- ``PrependClassToken`` / ``PositionEmbedding``: the learned class token and additive position
  embedding (separate, because ConViT inserts the class token only after its local layers).
- ``ResizeImage``: PyTorch-exact bicubic resizing as a pair of constant matrices (CrossViT's
  second branch sees a resized copy of the image; timm resizes with
  ``F.interpolate(mode="bicubic", align_corners=False)``, whose kernel, a = -0.75, differs from
  TensorFlow's a = -0.5, so ``keras.ops.image.resize`` would not reproduce its weights' inputs).

Weights are initialised as timm initialises them (truncated normal, std 0.02, for projections;
zero biases), so models trained from scratch start where the papers' models started.

Grey faces: patch embeddings take as many channels as the image has, so a (48, 48, 1) model
has a one-channel first convolution; the converters sum an RGB checkpoint's kernel over colour
(timm's ``in_chans=1``). That equals the RGB model fed the grey image replicated to three
channels when the channels share mean and std (ViT's 0.5; nearly so for ImageNet statistics,
which the classifier averages for grey input), at a third of the first layer's cost and with
no ``GreyToRGB`` layer.
"""

import inspect
import math

import numpy as np

import keras
from keras import ops


def trunc_normal(stddev=0.02):
    """timm's ``trunc_normal_(std=.02)`` initialisation for projections and tokens."""
    return keras.initializers.TruncatedNormal(stddev=stddev)


# Argument checks shared by the transformer families: ValueError naming the argument.

def check_rate(value, name):
    """A dropout/stochastic-depth rate in [0, 1)."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def check_positive_int(value, name):
    """A positive integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def to_pair(value, name):
    """An int or a pair -> a pair of positive ints (window and patch sizes)."""
    values = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if len(values) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(check_positive_int(v, name) for v in values)


def check_rank(input_shape, rank, layer, what):
    """A clear error for an input of the wrong rank, naming what the layer expects."""
    if len(input_shape) != rank:
        raise ValueError(f"{layer} expects {what} (rank {rank}), got input shape "
                         f"{tuple(input_shape)}")


def split_heads(x, num_parts, num_heads):
    """(B, N, parts * H * d) -> ``num_parts`` tensors of shape (B, H, N, d), timm's qkv layout."""
    n, width = x.shape[1], x.shape[2]
    x = ops.reshape(x, (-1, n, num_parts, num_heads, width // (num_parts * num_heads)))
    x = ops.transpose(x, (2, 0, 3, 1, 4))
    return [x[i] for i in range(num_parts)]


def merge_heads(x):
    """(B, H, N, d) -> (B, N, H * d)."""
    heads, n, d = x.shape[1], x.shape[2], x.shape[3]
    return ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (-1, n, heads * d))


def attention_logits(q, k):
    """``q k^T / sqrt(d)`` for (B, H, N, d) queries and (B, H, M, d) keys -> (B, H, N, M)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    return ops.matmul(q * ops.cast(scale, q.dtype), ops.transpose(k, (0, 1, 3, 2)))


def attention_scores(q, k):
    """``softmax(q k^T / sqrt(d))`` over the key axis."""
    return ops.softmax(attention_logits(q, k), axis=-1)


@keras.saving.register_keras_serializable(package="keras_fer")
class DropPath(keras.layers.Layer):
    """Stochastic depth: zeroes a residual branch for a random subset of samples in training.

    Kept samples are scaled by ``1 / (1 - rate)`` so the expectation is unchanged; inference is
    the identity. Used on every residual branch as in DeiT/Swin/ConViT/CrossViT training.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate(rate, "rate")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = ops.floor(keep + keras.random.uniform(shape, dtype=x.dtype,
                                                     seed=self.seed_generator))
        return x / keep * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="keras_fer")
class Mlp(keras.layers.Layer):
    """``fc2(drop(gelu(fc1(x))))`` then dropout: the transformer feed-forward network.

    ``hidden_dim`` is the inner width (``mlp_ratio * dim``); the output width equals the input's
    unless ``out_dim`` is given. GELU is the exact erf form, as timm's ``nn.GELU``.
    """

    def __init__(self, hidden_dim, out_dim=None, drop=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = check_positive_int(hidden_dim, "hidden_dim")
        self.out_dim = None if out_dim is None else check_positive_int(out_dim, "out_dim")
        self.drop = check_rate(drop, "drop")

    def build(self, input_shape):
        dim = input_shape[-1]
        self.fc1 = keras.layers.Dense(self.hidden_dim, kernel_initializer=trunc_normal(),
                                      dtype=self.dtype_policy, name="fc1")
        self.fc1.build(input_shape)
        self.fc2 = keras.layers.Dense(self.out_dim or dim, kernel_initializer=trunc_normal(),
                                      dtype=self.dtype_policy, name="fc2")
        self.fc2.build(tuple(input_shape[:-1]) + (self.hidden_dim,))
        self.dropout = keras.layers.Dropout(self.drop, dtype=self.dtype_policy)

    def call(self, x, training=None):
        x = keras.activations.gelu(self.fc1(x), approximate=False)
        x = self.dropout(x, training=training)
        return self.dropout(self.fc2(x), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_dim or input_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "out_dim": self.out_dim,
                "drop": self.drop}


@keras.saving.register_keras_serializable(package="keras_fer")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Multi-head self-attention over a (B, N, D) token sequence (ViT Eqs. 2-3).

    ``[q, k, v] = x W_qkv``, per head ``softmax(q k^T / sqrt(d_h)) v``, heads concatenated and
    projected by ``proj``. The fused ``qkv`` kernel is timm's ``attn.qkv.weight`` transposed.
    """

    def __init__(self, num_heads, qkv_bias=True, attn_drop=0.0, proj_drop=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.qkv_bias = bool(qkv_bias)
        self.attn_drop = check_rate(attn_drop, "attn_drop")
        self.proj_drop = check_rate(proj_drop, "proj_drop")

    def build(self, input_shape):
        check_rank(input_shape, 3, type(self).__name__, "tokens (batch, tokens, dim)")
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"token dim {dim} must be divisible by num_heads={self.num_heads}")
        self.build_query_key_value(input_shape)
        self.proj = keras.layers.Dense(dim, kernel_initializer=trunc_normal(),
                                       dtype=self.dtype_policy, name="proj")
        self.proj.build(input_shape)
        self.attn_dropout = keras.layers.Dropout(self.attn_drop, dtype=self.dtype_policy)
        self.proj_dropout = keras.layers.Dropout(self.proj_drop, dtype=self.dtype_policy)

    def build_query_key_value(self, input_shape):
        """The fused ``qkv`` projection (timm's ``attn.qkv``); subclasses with separate q, k
        and v projections override this."""
        self.qkv = keras.layers.Dense(3 * input_shape[-1], use_bias=self.qkv_bias,
                                      kernel_initializer=trunc_normal(),
                                      dtype=self.dtype_policy, name="qkv")
        self.qkv.build(input_shape)

    def call(self, x, training=None):
        q, k, v = split_heads(self.qkv(x), 3, self.num_heads)
        attn = self.attn_dropout(attention_scores(q, k), training=training)
        return self.proj_dropout(self.proj(merge_heads(ops.matmul(attn, v))), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "qkv_bias": self.qkv_bias,
                "attn_drop": self.attn_drop, "proj_drop": self.proj_drop}


@keras.saving.register_keras_serializable(package="keras_fer")
class TransformerBlock(keras.layers.Layer):
    """Pre-norm transformer encoder block (ViT Eqs. 2-3), timm's ``Block``.

    ``x = x + DropPath(attn(LN1(x)))``; ``x = x + DropPath(mlp(LN2(x)))``. Subclasses change
    the token mixer by overriding ``make_attention`` (ConViT's gated positional attention).
    """

    def __init__(self, num_heads, mlp_ratio=4.0, qkv_bias=True, drop=0.0, attn_drop=0.0,
                 drop_path=0.0, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        if float(mlp_ratio) <= 0:
            raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio}")
        self.mlp_ratio = float(mlp_ratio)
        self.qkv_bias = bool(qkv_bias)
        self.drop = check_rate(drop, "drop")
        self.attn_drop = check_rate(attn_drop, "attn_drop")
        self.drop_path = check_rate(drop_path, "drop_path")
        if float(epsilon) <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self.epsilon = float(epsilon)

    def make_attention(self):
        return MultiHeadSelfAttention(self.num_heads, qkv_bias=self.qkv_bias,
                                      attn_drop=self.attn_drop, proj_drop=self.drop,
                                      dtype=self.dtype_policy, name="attn")

    def build(self, input_shape):
        check_rank(input_shape, 3, type(self).__name__, "tokens (batch, tokens, dim)")
        dim = input_shape[-1]
        self.norm1 = keras.layers.LayerNormalization(epsilon=self.epsilon,
                                                     dtype=self.dtype_policy, name="norm1")
        self.norm1.build(input_shape)
        self.attn = self.make_attention()
        self.attn.build(input_shape)
        self.norm2 = keras.layers.LayerNormalization(epsilon=self.epsilon,
                                                     dtype=self.dtype_policy, name="norm2")
        self.norm2.build(input_shape)
        self.mlp = Mlp(int(dim * self.mlp_ratio), drop=self.drop, dtype=self.dtype_policy,
                       name="mlp")
        self.mlp.build(input_shape)
        self.drop_path_layer = DropPath(self.drop_path, dtype=self.dtype_policy)

    def call(self, x, training=None):
        x = x + self.drop_path_layer(self.attn(self.norm1(x), training=training),
                                     training=training)
        return x + self.drop_path_layer(self.mlp(self.norm2(x), training=training),
                                        training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio,
                "qkv_bias": self.qkv_bias, "drop": self.drop, "attn_drop": self.attn_drop,
                "drop_path": self.drop_path, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_fer")
class PatchEmbedding(keras.layers.Layer):
    """Splits the image into non-overlapping ``patch_size`` patches and projects each to
    ``embed_dim`` (ViT Eq. 1) with one strided convolution, timm's ``patch_embed.proj``.

    ``flatten=True`` returns tokens (B, h * w, D) in row-major order (timm's ``flatten(2)``);
    ``flatten=False`` keeps the (B, h, w, D) map (Swin). Pixels beyond the last whole patch are
    dropped, as PyTorch's valid convolution drops them.
    """

    def __init__(self, patch_size, embed_dim, flatten=True, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = to_pair(patch_size, "patch_size")
        self.embed_dim = check_positive_int(embed_dim, "embed_dim")
        self.flatten = bool(flatten)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        check_rank(input_shape, 4, type(self).__name__, "images (batch, height, width, channels)")
        h, w = input_shape[1], input_shape[2]
        if h is not None and w is not None and (h < self.patch_size[0] or w < self.patch_size[1]):
            raise ValueError(f"image size {(h, w)} is smaller than patch_size {self.patch_size}")
        # (rows, columns) of patches; what a checkpoint's position table is resampled to.
        self.grid_size = (None if h is None else h // self.patch_size[0],
                          None if w is None else w // self.patch_size[1])
        self.proj = keras.layers.Conv2D(self.embed_dim, self.patch_size, strides=self.patch_size,
                                        use_bias=self.use_bias, dtype=self.dtype_policy,
                                        name="proj")
        self.proj.build(input_shape)

    def call(self, x):
        x = self.proj(x)
        if self.flatten:
            x = ops.reshape(x, (-1, x.shape[1] * x.shape[2], self.embed_dim))
        return x

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1] // self.patch_size[0], input_shape[2] // self.patch_size[1]
        if self.flatten:
            return (input_shape[0], h * w, self.embed_dim)
        return (input_shape[0], h, w, self.embed_dim)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size,
                "embed_dim": self.embed_dim, "flatten": self.flatten, "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package="keras_fer")
class PrependClassToken(keras.layers.Layer):
    """Prepends a learned class token (1, 1, D) to a (B, N, D) sequence -> (B, N + 1, D)."""

    def build(self, input_shape):
        check_rank(input_shape, 3, type(self).__name__, "tokens (batch, tokens, dim)")
        self.cls_token = self.add_weight(shape=(1, 1, input_shape[-1]), name="cls_token",
                                         initializer=trunc_normal())

    def call(self, x):
        token = ops.broadcast_to(ops.cast(self.cls_token, x.dtype),
                                 (ops.shape(x)[0], 1, x.shape[-1]))
        return ops.concatenate([token, x], axis=1)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], n, input_shape[2])


@keras.saving.register_keras_serializable(package="keras_fer")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned position embedding of shape (1, N, D) to a (B, N, D) sequence."""

    def build(self, input_shape):
        check_rank(input_shape, 3, type(self).__name__, "tokens (batch, tokens, dim)")
        if input_shape[1] is None:
            raise ValueError("PositionEmbedding needs a fixed number of tokens, got None")
        self.pos_embed = self.add_weight(shape=(1, input_shape[1], input_shape[2]),
                                         name="pos_embed", initializer=trunc_normal())

    def call(self, x):
        return x + ops.cast(self.pos_embed, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def bicubic_resize_matrix(in_size, out_size, antialias=False):
    """The (out_size, in_size) matrix of PyTorch's 1-D bicubic resize, ``align_corners=False``.

    Without antialiasing this is ``F.interpolate(mode="bicubic")``: source coordinate
    ``(i + 0.5) * in / out - 0.5``, Keys kernel with a = -0.75, four taps clamped to the border.
    With ``antialias=True`` it is PyTorch's (and PIL's) antialiased filter: a = -0.5, the kernel
    stretched by the downscale factor, weights renormalised to sum to one; timm resamples
    position embeddings this way. Applying it to rows then columns reproduces 2-D resizing.
    """
    in_size, out_size = int(in_size), int(out_size)
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be >= 1, got in_size={in_size}, out_size={out_size}")
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    scale = in_size / out_size
    if not antialias:
        a = -0.75
        for i in range(out_size):
            src = scale * (i + 0.5) - 0.5
            base = math.floor(src)
            t = src - base
            taps = (_cubic(t + 1.0, a), _cubic(t, a), _cubic(1.0 - t, a), _cubic(2.0 - t, a))
            for offset, weight in zip(range(-1, 3), taps):
                matrix[i, min(max(base + offset, 0), in_size - 1)] += weight
        return matrix
    support = 2.0 * scale if scale >= 1.0 else 2.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        weights = np.array([_cubic(abs((j - center + 0.5) * inv), -0.5) for j in range(lo, hi)])
        total = weights.sum()
        matrix[i, lo:hi] = weights / total if total != 0 else weights
    return matrix


def _cubic(x, a):
    """Keys' cubic convolution kernel with parameter ``a`` at distance ``x``."""
    x = abs(x)
    if x <= 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return 0.0


@keras.saving.register_keras_serializable(package="keras_fer")
class ResizeImage(keras.layers.Layer):
    """Resizes (B, H, W, C) images to ``size`` exactly as PyTorch's bicubic ``F.interpolate``.

    Implemented as ``A_h @ x @ A_w^T`` with constant matrices from ``bicubic_resize_matrix``,
    so it is differentiable, deterministic, exportable and bit-compatible in kernel with timm.
    """

    def __init__(self, size, antialias=False, **kwargs):
        super().__init__(**kwargs)
        self.size = to_pair(size, "size")
        self.antialias = bool(antialias)

    def build(self, input_shape):
        check_rank(input_shape, 4, type(self).__name__, "images (batch, height, width, channels)")
        if input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"ResizeImage needs a fixed input size, got {tuple(input_shape)}")
        self._rows = bicubic_resize_matrix(input_shape[1], self.size[0], self.antialias)
        self._cols = bicubic_resize_matrix(input_shape[2], self.size[1], self.antialias)

    def call(self, x):
        rows = ops.convert_to_tensor(self._rows.astype(keras.backend.standardize_dtype(x.dtype)))
        cols = ops.convert_to_tensor(self._cols.astype(keras.backend.standardize_dtype(x.dtype)))
        x = ops.einsum("oh,bhwc->bowc", rows, x)
        return ops.einsum("pw,bowc->bopc", cols, x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size[0], self.size[1], input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "antialias": self.antialias}


def transformer_classifier(backbone, arch, num_classes, input_shape, arch_options, pooling,
                           dropout=0.0, weights=None, load_head="auto", loader=None):
    """``FERClassifier`` over a transformer ``backbone`` with ``arch``'s registered
    normalisation; ``weights`` (a timm safetensors checkpoint) are loaded with ``loader``.

    ``arch_options`` record how the model was built, minus the weights file (provenance, not
    architecture), so ``create_model(arch, **model.arch_options)`` rebuilds it.
    """
    from keras_fer.models.classifier import FERClassifier
    from keras_fer.models.registry import get_architecture

    spec = get_architecture(arch)
    model = FERClassifier(backbone, num_classes, input_shape, mean=spec.mean, std=spec.std,
                          pooling=pooling, dropout=dropout, arch=arch,
                          arch_options=dict(arch_options, dropout=dropout))
    if weights is not None:
        loader(model, weights, load_head=load_head)
    return model


def classifier_builder(make_backbone, pooling, loader):
    """A transformer family's ``build(arch, num_classes, input_shape, **options)`` (what
    ``register_family`` takes): ``options`` are ``make_backbone``'s own arguments, recorded
    with their defaults filled in (tuples as lists) in ``arch_options``, plus ``dropout``,
    ``weights`` (a timm checkpoint, loaded by ``loader``) and ``load_head``. The backbone is
    named ``{arch}_backbone`` and read through ``pooling`` ("cls", "avg", or None for a
    backbone that returns pooled features)."""

    def build(arch, num_classes, input_shape, dropout=0.0, weights=None, load_head="auto",
              **options):
        bound = inspect.signature(make_backbone).bind(input_shape, **options)
        bound.apply_defaults()
        options = {key: _as_lists(value) for key, value in bound.arguments.items()
                   if key not in ("input_shape", "name")}
        backbone = make_backbone(input_shape, name=f"{arch}_backbone", **options)
        return transformer_classifier(backbone, arch, num_classes, input_shape, options,
                                      pooling, dropout, weights, load_head, loader)

    build.__name__ = f"build_{make_backbone.__name__.removesuffix('_backbone')}"
    return build


def _as_lists(value):
    """Tuples (at any depth) as lists, as ``arch_options`` record them."""
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value
