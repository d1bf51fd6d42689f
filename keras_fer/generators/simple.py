"""The simple Batch Transformer encoder-decoder (paper 000, Figure 1; the MNIST model).

    image (H, W, C), metadata c (L)
      -> [per-image standardisation]
      -> Dense(mix_units) of [flatten(image), c]        (mixes input and metadata)
      -> BPC attention (Eq. 3)
      -> Dense(m)                                        (the narrow bottleneck)
      -> LrReLU -> Dense(2m + 1) -> LrReLU -> Dense(H W C) (Eqs. 7-10)
      -> image [with the input's mean and std]

Like the author's ``BTransAELayers2D`` (ANNLib), every Dense of the encoder is linear: the
non-linearities are the attention's softmax and the decoder's learnable ReLUs. ``m`` defaults
to the number of controlled parameters (the one-hot width), the paper's "radically reduced"
bottleneck.
"""

import keras

from keras_fer.generators import common
from keras_fer.layers import BatchAttention
from keras_fer.validation import positive_int


def build_simple_generator(input_shape, num_conditions, bottleneck=None, mix_units=256,
                           hidden_units=None, axis="batch", num_tokens=16, use_tanh=False,
                           reinject_conditions=False, per_connection=False, standardize=True,
                           epsilon=1e-3, name="bpc_generator_simple"):
    """Figure 1 of paper 000 as a functional Keras model.

    Inputs: ``image`` (batch, H, W, C) floats in [0, 1] and one one-hot input per condition
    group (see :func:`keras_fer.generators.common.parse_condition_groups`). Output: the image
    re-rendered under the given conditions, same shape.

    Args:
        input_shape: (H, W, C).
        num_conditions: one-hot width (int) or ``{group: width}``.
        bottleneck: width ``m`` of the bottleneck (default: the total one-hot width).
        mix_units: width of the first Dense that mixes image and metadata, which is also the
            BPC head's dimension ``d`` (it learns a d x d attention between these features).
        hidden_units: width of the decoder's expansion layer (default ``2m + 1``).
        axis: ``"batch"`` (the author's: the BPC column statistics run over the mini-batch,
            so a sample's output depends on its batch-mates) or ``"tokens"`` (the mixed
            vector is cut into ``num_tokens`` tokens of ``mix_units / num_tokens`` features
            and the statistics run over them: batch-invariant, deterministic serving).
        num_tokens: tokens per sample in ``"tokens"`` mode; must divide ``mix_units``.
        use_tanh: tanh on the BPC keys and queries (Eq. 5).
        reinject_conditions: also append the metadata to the bottleneck, so the decoder reads
            ``[z, c]`` (Figure 2's residual re-injection; off in Figure 1).
        per_connection: one LrReLU slope per connection in the decoder's LrReLUDense (the
            author's ``LrReLUFCLayer``) instead of one per unit (Eq. 8 as written).
        standardize: per-image standardisation in, the input's statistics out.
        epsilon: lower clamp of the per-image standard deviation.
    """
    input_shape = common.check_input_shape(input_shape)
    groups = common.parse_condition_groups(num_conditions)
    axis = common.check_axis(axis)
    mix_units = positive_int(mix_units, "mix_units")
    bottleneck = (sum(groups.values()) if bottleneck is None
                  else positive_int(bottleneck, "bottleneck"))
    if axis == "tokens":
        num_tokens = positive_int(num_tokens, "num_tokens")
        if mix_units % num_tokens:
            raise ValueError(f"num_tokens={num_tokens} must divide mix_units={mix_units} "
                             f'(axis="tokens" cuts the mixed vector into equal tokens)')

    image, conditions, metadata = common.make_inputs(input_shape, groups)
    x = common.encoder_input(image, standardize, epsilon)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(mix_units, name="mix")(
        common.with_metadata(x, metadata, "image_and_metadata"))
    if axis == "batch":
        x = BatchAttention(axis="batch", use_tanh=use_tanh, name="bpc")(x)
    else:
        x = keras.layers.Reshape((num_tokens, mix_units // num_tokens), name="tokens")(x)
        x = BatchAttention(axis="tokens", use_tanh=use_tanh, name="bpc")(x)
        x = keras.layers.Flatten(name="untokens")(x)
    z = keras.layers.Dense(bottleneck, name="bottleneck")(x)
    if reinject_conditions:
        z = common.with_metadata(z, metadata, "bottleneck_and_metadata")
    out = common.build_decoder(z, image, input_shape, hidden_units, per_connection,
                               standardize, epsilon)
    return keras.Model([image, *conditions], out, name=name)
