"""Bottleneck Attention Module (Park, Woo, Lee & Kweon 2018), the baseline of SPEC section 002."""

import keras
from keras import ops

COMBINE_MODES = ("sum", "product")
BATCH_NORM_MODES = ("output", "hidden", "none")


@keras.saving.register_keras_serializable(package="keras_fer")
class BAM(keras.layers.Layer):
    """BAM: ``output = x + x * M(x)`` with ``M = sigmoid(Mc(x) + Ms(x))`` (BAM paper Eqs. 1-2).

    For channels-last ``x`` of shape (batch, H, W, C) and hidden width ``c = max(1, C // r)``:

    - channel branch (BAM Eq. 3): ``Mc = BN(W1 relu(W0 avgpool(x) + b0) + b1)``, shape
      (batch, 1, 1, C);
    - spatial branch (BAM Eq. 4): 1x1 conv C -> c, ``num_dilated_convs`` 3x3 convs c -> c with
      dilation ``dilation`` ("same" padding), 1x1 conv c -> 1, ReLU after every conv but the
      last, then BN; shape (batch, H, W, 1);
    - both are broadcast to (batch, H, W, C), summed, squashed by a sigmoid; the residual form
      ``x * (1 + M)`` keeps the identity path so a module can be dropped into a pretrained
      backbone without destroying its features.

    Readings that differ between the BAM paper and its official code
    (github.com/Jongchan/attention-module) are arguments:

    - ``combine``: ``"sum"`` (paper Eq. 2, default) or ``"product"`` (official code:
      ``sigmoid(Mc * Ms)``);
    - ``batch_norm``: ``"output"`` (paper Eqs. 3-4: one BN at the end of each branch, default),
      ``"hidden"`` (official code: BN after the hidden Dense and after every conv but the last,
      none at the ends), ``"none"``;
    - ``conv_bias``: biases on the spatial branch's convolutions (the MLP always has them,
      ``b0, b1`` in BAM Eq. 3).

    A bias that feeds straight into a BN is left out (``b1`` and the last conv's bias under
    ``"output"``, the hidden layers' biases under ``"hidden"``): BN subtracts the mean, so such
    a bias has an identically zero gradient and only shifts the moving mean. A PyTorch model
    that keeps them has that many more (dead) parameters.

    Parameter counts, counted like ``sum(p.numel() for p in module.parameters())`` in PyTorch
    (trainable weights only; BN moving statistics excluded). The +23,808 (ResNet18, modules at
    64, 64, 128, 256 channels) and +11,192 (MobileNetV2, 7 modules at 32, 16, 24, 32, 64, 96,
    160) of the HFC paper's Table 2 are both reproduced by exactly
    ``3 C c + 9 c^2 num_dilated_convs + C + 2 c`` per module, i.e.
    ``BAM(conv_bias=False, batch_norm="none")`` (MLP biases only, no BN affine parameters);
    any BN scale/offset (2 per channel) breaks the match, and the only other split of the
    linear terms (first Dense unbiased, 1x1 reduce conv biased) is implausible.

    The residual form does not make the module the identity at initialisation: with random
    last layers the gate ``1 + M`` is about 1.5 (measured in the zoo's FER2013 ResNet18, run 2, at
    its four hook points, ``benchmarks/attention_at_init.py``: means 1.42-1.69, between 1.00 and
    2.00), so four modules rescale the trained features by ~1.5 each, unevenly, and FER2013
    PublicTest accuracy fell from 58.4 % to 26.7 % before any training.
    ``identity_init=True`` starts the last layer of the branches at zero (``channel_fc1``, and
    ``spatial_final`` with ``combine="sum"``; with ``"product"`` one zero factor is enough, and
    two would leave both without gradient), so the logits are 0, and divides the gate by its
    value there: ``output = x (1 + M) / 1.5``, exactly ``x`` at initialisation, in (2/3, 4/3)
    once trained. The earlier layers of a zeroed branch get no gradient until its last layer
    has moved off zero. Off by default: the BAM paper's module.

    BatchNormalization uses PyTorch's defaults (momentum 0.1 there, 0.9 here; epsilon 1e-5)
    since the reference numbers come from PyTorch models.

    Args:
        reduction: channel reduction ratio ``r`` of both branches (16 in the paper).
        dilation: dilation rate of the 3x3 convolutions (4 in the paper).
        num_dilated_convs: number of 3x3 dilated convolutions (2 in the paper), ``>= 0``.
        combine: ``"sum"`` or ``"product"``, see above.
        batch_norm: ``"output"``, ``"hidden"`` or ``"none"``, see above.
        conv_bias: whether the spatial branch's convolutions have biases.
        identity_init: start as the identity (zero last layers, gate divided by 1.5), for
            insertion into a trained network; see above.
    """

    def __init__(self, reduction=16, dilation=4, num_dilated_convs=2, combine="sum",
                 batch_norm="output", conv_bias=True, identity_init=False, **kwargs):
        super().__init__(**kwargs)
        for name, value, low in (("reduction", reduction, 1), ("dilation", dilation, 1),
                                 ("num_dilated_convs", num_dilated_convs, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {combine!r}")
        if batch_norm not in BATCH_NORM_MODES:
            raise ValueError(f"batch_norm must be one of {BATCH_NORM_MODES}, got {batch_norm!r}")
        self.reduction = reduction
        self.dilation = dilation
        self.num_dilated_convs = num_dilated_convs
        self.combine = combine
        self.batch_norm = batch_norm
        self.conv_bias = bool(conv_bias)
        self.identity_init = bool(identity_init)

    def _bn(self, name):
        return keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, dtype=self.dtype_policy, name=name)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"BAM expects channels-last input of shape (batch, H, W, C) with known C, got "
                f"shape {tuple(input_shape)}")
        channels = input_shape[-1]
        hidden = max(1, channels // self.reduction)
        self.hidden_units = hidden
        hidden_bn = self.batch_norm == "hidden"
        output_bn = self.batch_norm == "output"
        dt = self.dtype_policy

        self.channel_fc0 = keras.layers.Dense(
            hidden, use_bias=not hidden_bn, dtype=dt, name="channel_fc0")
        self.channel_fc0.build((input_shape[0], channels))
        self.channel_fc0_bn = self._bn("channel_fc0_bn") if hidden_bn else None
        last = {"kernel_initializer": "zeros"} if self.identity_init else {}
        self.channel_fc1 = keras.layers.Dense(
            channels, use_bias=not output_bn, dtype=dt, name="channel_fc1", **last)
        self.channel_fc1.build((input_shape[0], hidden))
        self.channel_bn = self._bn("channel_bn") if output_bn else None

        spatial_in = tuple(input_shape[:3]) + (hidden,)
        self.spatial_reduce = keras.layers.Conv2D(
            hidden, 1, use_bias=self.conv_bias and not hidden_bn, dtype=dt,
            name="spatial_reduce")
        self.spatial_reduce.build(input_shape)
        self.spatial_dilated = []
        for i in range(self.num_dilated_convs):
            conv = keras.layers.Conv2D(
                hidden, 3, padding="same", dilation_rate=self.dilation,
                use_bias=self.conv_bias and not hidden_bn, dtype=dt,
                name=f"spatial_dilated_{i}")
            conv.build(spatial_in)
            self.spatial_dilated.append(conv)
        self.spatial_hidden_bns = (
            [self._bn(f"spatial_bn_{i}") for i in range(self.num_dilated_convs + 1)]
            if hidden_bn else [])
        self.spatial_final = keras.layers.Conv2D(
            1, 1, use_bias=self.conv_bias and not output_bn, dtype=dt, name="spatial_final",
            **(last if self.combine == "sum" else {}))
        self.spatial_final.build(spatial_in)
        self.spatial_bn = self._bn("spatial_bn") if output_bn else None

        for bn, shape in ([(self.channel_fc0_bn, (None, hidden)),
                           (self.channel_bn, (None, channels)),
                           (self.spatial_bn, spatial_in[:3] + (1,))]
                          + [(b, spatial_in) for b in self.spatial_hidden_bns]):
            if bn is not None:
                bn.build(shape)

    @staticmethod
    def _maybe(bn, x, training):
        return x if bn is None else bn(x, training=training)

    def channel_attention(self, inputs, training=None):
        """``Mc`` before the sigmoid, shape (batch, 1, 1, C)."""
        y = self.channel_fc0(ops.mean(inputs, axis=(1, 2)))
        y = ops.relu(self._maybe(self.channel_fc0_bn, y, training))
        y = self._maybe(self.channel_bn, self.channel_fc1(y), training)
        return y[:, None, None, :]

    def spatial_attention(self, inputs, training=None):
        """``Ms`` before the sigmoid, shape (batch, H, W, 1)."""
        bns = self.spatial_hidden_bns or [None] * (self.num_dilated_convs + 1)
        y = inputs
        for conv, bn in zip([self.spatial_reduce] + self.spatial_dilated, bns):
            y = ops.relu(self._maybe(bn, conv(y), training))
        return self._maybe(self.spatial_bn, self.spatial_final(y), training)

    def gate(self, inputs, training=None):
        """The factor ``call`` multiplies ``x`` by: ``1 + M`` (divided by 1.5 with
        ``identity_init``), shape (batch, H, W, C)."""
        mc = self.channel_attention(inputs, training)
        ms = self.spatial_attention(inputs, training)
        gate = 1.0 + ops.sigmoid(mc + ms if self.combine == "sum" else mc * ms)
        return gate / 1.5 if self.identity_init else gate

    def call(self, inputs, training=None):
        return inputs * self.gate(inputs, training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "reduction": self.reduction,
            "dilation": self.dilation,
            "num_dilated_convs": self.num_dilated_convs,
            "combine": self.combine,
            "batch_norm": self.batch_norm,
            "conv_bias": self.conv_bias,
            "identity_init": self.identity_init,
        })
        return config
