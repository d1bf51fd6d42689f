"""The specialised hierarchical generator (paper 000, Figure 2; the BookClub face model).

    image (H, W, C), metadata c (L)
      -> [per-image standardisation] + Dense(c) reshaped to an image  (c mixed into every patch)
      -> CPE attention (Eq. 2) between the p x p patches              (optional, use_cpe)
      -> level 1: patchy BPC (Eq. 4) on p x p patches -> Dense([y, c]) to N K units
      -> level i: patchy BPC on the previous Dense   -> Dense([y, c]) to ... K units
      -> last level's Dense([y, c]) to the bottleneck m, output [z, c]
      -> LrReLU -> Dense(2 (m + L) + 1) -> LrReLU -> Dense(H W C)       (Eqs. 7-10)

The metadata ``c`` is re-injected by residual concatenation into every encoder Dense and into
the bottleneck's output (the author's ``residualFCLayer`` appends it to each layer's output),
so the decoder always knows which condition to render: with a bottleneck as narrow as the
one-hot this is what makes the conditioning strong.

Deviations from the paper, and why:

* The paper's first patchy BPC "mixes meta-parameters into each attention patch" by appending
  ``c`` to every patch vector (``...CosPcTransformerMixLayer``). Here ``c`` is mapped by a
  Dense to an image-sized offset added to the (standardised) image, so every patch carries it
  while :class:`~keras_fer.layers.PatchBatchAttention` is reused unchanged; the levels after
  the first mix ``c`` in through their Dense only, as in the paper.
* CPE runs between the p x p patch tokens (one shared 2-D head of dimension p * p), not on the
  whole flattened image (whose (HWC)^2 kernels would not fit: 1.8e9 weights at 100 x 100 x 3).
  With ``axis="batch"`` every patch of every image in the mini-batch is one of the ``n`` rows
  (the layer's batch semantics), so its cost grows with (batch x patches)^2. The paper found
  CPE hurt on faces and dropped it from its final model; ``use_cpe=False`` does the same.
* Levels after the first cut their input vector into ``level_patch_size^2``-wide groups (the
  vector is laid out as a (q, width / q) one-channel image and cut into q x q patches, a fixed
  partition of the units of a fully connected layer, so any partition is equivalent); widths
  are rounded up to a multiple of ``q^2``. ``levels=2`` is the paper's "patchy BPC -> Dense ->
  BPC -> Dense -> bottleneck"; the author's code used up to seven levels.
"""

import math

import keras

from keras_fer.generators import common
from keras_fer.layers import CosineAttention, PatchBatchAttention
from keras_fer.validation import positive_int


def _check_compression(compression):
    if (isinstance(compression, bool) or not isinstance(compression, (int, float))
            or not 0 < compression <= 1):
        raise ValueError(f"compression must be a number in (0, 1] (the paper's K = 1/3), got "
                         f"{compression!r}")
    return float(compression)


def _patch_tokens(x, p, name):
    """(H, W, C) -> (G C, p p) tokens: every p x p patch of every channel is one token."""
    h, w, c = x.shape[1:]
    x = keras.layers.Reshape((h // p, p, w // p, p, c), name=f"{name}_grid")(x)
    x = keras.layers.Permute((1, 3, 5, 2, 4), name=f"{name}_order")(x)
    return keras.layers.Reshape(((h // p) * (w // p) * c, p * p), name=f"{name}_tokens")(x)


def _untokens(x, image_shape, p, name):
    h, w, c = image_shape
    x = keras.layers.Reshape((h // p, w // p, c, p, p), name=f"{name}_ungrid")(x)
    x = keras.layers.Permute((1, 4, 2, 5, 3), name=f"{name}_unorder")(x)
    return keras.layers.Reshape(image_shape, name=f"{name}_image")(x)


def build_patchy_generator(input_shape, num_conditions, bottleneck=None, patch_size=None,
                           compression=1 / 3, levels=2, level_patch_size=8, hidden_units=None,
                           axis="batch", use_cpe=True, use_tanh=False,
                           reinject_conditions=True, per_connection=False, standardize=True,
                           epsilon=1e-3, name="bpc_generator_patchy"):
    """Figure 2 of paper 000 as a functional Keras model (see the module docstring).

    Inputs and output as for :func:`~keras_fer.generators.build_simple_generator`.

    Args:
        input_shape: (H, W, C); H and W must be multiples of ``patch_size``.
        num_conditions: one-hot width (int) or ``{group: width}``.
        bottleneck: width ``m`` (default: the total one-hot width).
        patch_size: side of the first level's patches (default: a 5 x 5 grid as in the
            paper's 20-pixel patches of 100 x 100 images, see ``common.default_patch_size``).
        compression: the paper's K: each intermediate Dense has ``K`` times its input's width.
        levels: number of (patchy BPC, Dense) pairs; the last Dense is the bottleneck.
        level_patch_size: q; the levels after the first use q x q groups (q^2-dim heads).
        hidden_units: decoder expansion width (default ``2 (m + L) + 1`` with re-injection).
        axis: ``"batch"`` (the author's; outputs depend on batch-mates) or ``"tokens"``
            (batch-invariant) for every attention layer.
        use_cpe: the CPE layer in front (Figure 2); the paper's final BookClub model omits it.
        use_tanh: tanh on keys and queries of every head (Eq. 5).
        reinject_conditions: append ``c`` to every encoder Dense's input and to the bottleneck
            (Figure 2); False keeps only the first mixing, as in Figure 1.
        per_connection, standardize, epsilon: as for the simple generator.
    """
    input_shape = common.check_input_shape(input_shape)
    groups = common.parse_condition_groups(num_conditions)
    axis = common.check_axis(axis)
    compression = _check_compression(compression)
    levels = positive_int(levels, "levels")
    q = positive_int(level_patch_size, "level_patch_size")
    height, width, channels = input_shape
    p = (common.default_patch_size(height, width) if patch_size is None
         else positive_int(patch_size, "patch_size"))
    if height % p or width % p:
        raise ValueError(f"patch_size={p} must divide the image height and width, got "
                         f"input_shape {input_shape}")
    bottleneck = (sum(groups.values()) if bottleneck is None
                  else positive_int(bottleneck, "bottleneck"))

    image, conditions, metadata = common.make_inputs(input_shape, groups)

    def inject(x, name):
        return common.with_metadata(x, metadata, name) if reinject_conditions else x

    x = common.encoder_input(image, standardize, epsilon)
    offset = keras.layers.Dense(math.prod(input_shape), name="condition_image")(metadata)
    offset = keras.layers.Reshape(input_shape, name="condition_image_shape")(offset)
    x = keras.layers.Add(name="image_with_condition")([x, offset])
    if use_cpe:
        tokens = _patch_tokens(x, p, "cpe")
        tokens = CosineAttention(axis=axis, use_tanh=use_tanh, name="cpe")(tokens)
        x = _untokens(tokens, input_shape, p, "cpe")

    units = math.prod(input_shape)
    for level in range(1, levels + 1):
        if level == 1:
            y = PatchBatchAttention(p, axis=axis, use_tanh=use_tanh, name="patch_bpc_1")(x)
        else:
            grid = keras.layers.Reshape((q, units // q, 1), name=f"level_{level}_grid")(x)
            y = PatchBatchAttention(q, axis=axis, use_tanh=use_tanh,
                                    name=f"patch_bpc_{level}")(grid)
        y = keras.layers.Flatten(name=f"level_{level}_flat")(y)
        y = inject(y, f"level_{level}_and_metadata")
        if level == levels:
            x = keras.layers.Dense(bottleneck, name="bottleneck")(y)
        else:
            units = common.round_up(units * compression, q * q)
            x = keras.layers.Dense(units, name=f"squeeze_{level}")(y)
    z = inject(x, "bottleneck_and_metadata")
    out = common.build_decoder(z, image, input_shape, hidden_units, per_connection,
                               standardize, epsilon)
    return keras.Model([image, *conditions], out, name=name)
