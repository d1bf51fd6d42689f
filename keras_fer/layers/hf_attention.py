"""High-frequency spatial attention (Kim & Jo, SPEC section 002, paper section 3, Eqs. 1-10)."""

import keras
from keras import ops

from keras_fer.layers import spectral

# Which (query, key) pairs feed the score convolution, one cross-correlation matrix per pair.
# "x" is the compressed input x~, "hfc"/"lfc" its high/low-frequency components.
QUERY_PAIRS = {
    "hfc": (("hfc", "x"),),
    "lfc": (("lfc", "x"),),
    "hfc+lfc": (("hfc", "x"), ("lfc", "x")),
    "hfc+lfc+hl": (("hfc", "x"), ("lfc", "x"), ("hfc", "lfc")),
}
NON_SQUARE_MODES = ("error", "pad")


@keras.saving.register_keras_serializable(package="keras_fer")
class HighFrequencyAttention(keras.layers.Layer):
    """Spatial attention whose score comes from the high-frequency part of the feature map.

    For channels-last ``x`` of shape (batch, n, n, C):

    1. ``x~ = C_1x1(x)``: pointwise convolution to one channel, no bias (Eq. 1). The paper
       compresses first because the high-pass images of the channels look alike (its Fig. 3).
    2. ``h = F^-1{F{x~} H_HPF}`` (Eqs. 2-3): the high-pass filter zeroes a low-frequency disc or
       square of radius ``cutoff`` centred on the zero frequency (the centre of the
       fftshift-ed spectrum). The filter is symmetric, so ``h`` is real in exact arithmetic;
       the real part is taken (not the magnitude, which would rectify ``h``).
    3. Query = ``h``, key = ``x~``. Their singular values ``s_h, s_x`` (length n, Eqs. 5-7)
       give the "cross-correlation" matrix ``M = s_h s_x^T`` (n x n, Eq. 8), the paper's cheap
       stand-in for the Kronecker product of the two images.
    4. ``a = sigmoid(C_7x7(M))`` (Eq. 9): a one-output ``kernel_size`` x ``kernel_size``
       convolution, "same" zero padding, no bias.
    5. ``output = a * x`` with ``a`` broadcast over the channels (Eq. 10).

    Parameters: ``C + k*k*m`` with ``m`` the number of matrices (1 for "hfc"/"lfc", 2 for
    "hfc+lfc", 3 for "hfc+lfc+hl"); ``C + 49`` for the paper's module, which reproduces its
    +708 (ResNet18, modules at 64, 64, 128, 256 channels) and +767 (MobileNetV2, 7 modules).

    Faithful oddities, kept on purpose:
    - singular values are sorted in descending order, so ``M`` (and ``a``) is not spatially
      aligned with the image: row ``i`` of the attention map belongs to the i-th largest
      singular value, not to image row ``i``. The convolution learns which positions of the
      feature map to favour from the spectra only; a flipped, transposed or rotated map gets
      the same attention map (tested). Measured on CK+48 (ResNet18, 48x48, 20 epochs): the
      trained maps were near-binary masks at fixed positions, the same for every face
      (std over images 0.05 at 12x12, 0 at 3x3), zeroing 45-56 % of the positions;
    - ``M`` is not normalised, so its scale follows the feature magnitudes (products of
      singular values); the sigmoid may saturate on large activations.

    Inserted into a trained network, the paper's module is far from the identity at
    initialisation: it does not halve every activation but masks them at random. Measured in
    the FER2013-trained ResNet18 of the zoo (``resnet18.fer2013`` run 2, 48x48, modules after the
    stem and stages 1-3; ``benchmarks/attention_at_init.py``), the random score convolution gave
    gates of mean 0.24, 0.68, 0.58 and 0.47, between 0.00 and 1.00, 43 % of the positions below
    0.1 after the stem, and FER2013 PublicTest accuracy fell from 58.4 % to 16.1 % (the LFC and
    two-matrix variants alike: 15-20 %) before any training. ``identity_init=True`` makes the
    module exactly the identity at initialisation instead: the score convolution starts at
    zero (``s = 0`` everywhere) and the gate is divided by its value there,
    ``a = sigmoid(s) / sigmoid(0) = 2 sigmoid(s)``, so ``output = x`` until training moves the
    convolution; a trained gate lies in (0, 2) rather than (0, 1). The pointwise convolution
    gets no gradient until the score convolution has moved off zero (as in any
    zero-initialised residual branch). Off by default: the paper's module.

    Args:
        cutoff: radius of the removed low-frequency region, in frequency bins (DFT index
            units), ``>= 0`` (0 removes only the mean). Must be below ``min(n) // 2``, the
            highest frequency index, or the square filter would remove every frequency;
            checked when the layer is built with a known spatial size.
        filter_shape: ``"disc"`` (``ky^2 + kx^2 <= r^2`` removed) or ``"square"``
            (``max(|ky|, |kx|) <= r`` removed). The paper does not say which it used.
        relative_cutoff: if True, ``cutoff`` is a fraction in [0, 1) of the half size and
            the radius is ``cutoff * min(H, W) / 2``, so one setting suits modules at every
            resolution of a backbone.
        query: ``"hfc"`` (the paper's module), ``"lfc"`` (low-pass query), ``"hfc+lfc"``
            (both matrices, stacked as two channels before the convolution), or
            ``"hfc+lfc+hl"`` (plus ``s_hfc s_lfc^T``: HFC as query and LFC as key, the paper's
            ablation group 5, "HL"). The low-pass component is ``x~ - h``.
        kernel_size: size of the score convolution (7 in the paper), odd.
        non_square: what to do with H != W, where ``min(H, W)`` singular values cannot fill
            an H x W map. ``"error"`` (default; the paper only defines square maps) raises
            ``ValueError``. ``"pad"`` zero-pads the query's singular values to length H and
            the key's to length W (the singular values of the full H x W Sigma), so
            ``M[i, j] = s_h[i] s_x[j]`` still holds where defined and is 0 beyond
            ``min(H, W)``. With an unknown spatial size at build time the square check
            cannot run and both modes compute the padded form.
        kernel_initializer: initializer of both convolutions (of the pointwise one only with
            ``identity_init``).
        identity_init: start as the identity (zero score convolution, gate ``2 sigmoid(s)``),
            for insertion into a trained network; see above.

    FFT and SVD run in float32 (float64 if the layer computes in float64), also under mixed
    precision, where half-precision kernels do not exist and ``M`` would overflow float16.
    """

    def __init__(
        self,
        cutoff=1.0,
        filter_shape="disc",
        relative_cutoff=False,
        query="hfc",
        kernel_size=7,
        non_square="error",
        kernel_initializer="glorot_uniform",
        identity_init=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)):
            raise ValueError(f"cutoff must be a number, got {cutoff!r}")
        if cutoff < 0:
            raise ValueError(f"cutoff must be >= 0, got {cutoff}")
        if relative_cutoff and cutoff >= 1:
            raise ValueError(
                f"cutoff must be < 1 when relative_cutoff=True (a fraction of the half size), "
                f"got {cutoff}")
        if filter_shape not in spectral.FILTER_SHAPES:
            raise ValueError(
                f"filter_shape must be one of {spectral.FILTER_SHAPES}, got {filter_shape!r}")
        if query not in QUERY_PAIRS:
            raise ValueError(f"query must be one of {tuple(QUERY_PAIRS)}, got {query!r}")
        if (isinstance(kernel_size, bool) or not isinstance(kernel_size, int)
                or kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        if non_square not in NON_SQUARE_MODES:
            raise ValueError(f"non_square must be one of {NON_SQUARE_MODES}, got {non_square!r}")
        self.cutoff = float(cutoff)
        self.filter_shape = filter_shape
        self.relative_cutoff = bool(relative_cutoff)
        self.query = query
        self.kernel_size = kernel_size
        self.non_square = non_square
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.identity_init = bool(identity_init)
        self._pairs = QUERY_PAIRS[query]

    @property
    def num_matrices(self):
        """Channels of the score convolution's input: one per (query, key) pair."""
        return len(self._pairs)

    def _radius(self, height, width):
        if not self.relative_cutoff:
            return self.cutoff
        if isinstance(height, int) and isinstance(width, int):
            return self.cutoff * min(height, width) / 2.0
        return self.cutoff * ops.cast(ops.minimum(height, width), "float32") / 2.0

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"HighFrequencyAttention expects channels-last input of shape (batch, H, W, C), "
                f"got shape {tuple(input_shape)}")
        height, width, channels = input_shape[1:]
        if channels is None:
            raise ValueError(
                f"HighFrequencyAttention needs a known channel count, got input shape "
                f"{tuple(input_shape)}")
        if height is not None and width is not None:
            if height != width and self.non_square == "error":
                raise ValueError(
                    f"HighFrequencyAttention needs square feature maps (H == W): the n x n "
                    f"map M = s_h s_x^T has min(H, W) singular values per side; got input "
                    f"shape {tuple(input_shape)}. Use non_square='pad' to zero-pad instead.")
            highest = min(height, width) // 2
            radius = self._radius(height, width)
            if radius >= highest:
                what = (f"cutoff={self.cutoff:g} (radius {radius:g} bins)"
                        if self.relative_cutoff else f"cutoff={self.cutoff:g}")
                raise ValueError(
                    f"{what} leaves no high frequency for a {height}x{width} input: the "
                    f"radius must be < min(H, W) // 2 = {highest}, the highest frequency index")
        self.pointwise = keras.layers.Conv2D(
            1, 1, use_bias=False, kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy, name="pointwise")
        self.pointwise.build(input_shape)
        self._spectral_dtype = spectral.spectral_dtype(self.compute_dtype)
        self.score_conv = keras.layers.Conv2D(
            1, self.kernel_size, padding="same", use_bias=False,
            kernel_initializer="zeros" if self.identity_init else self.kernel_initializer,
            dtype=self._spectral_dtype,
            name="score_conv")
        self.score_conv.build((input_shape[0], height, width, self.num_matrices))

    def attention_scores(self, inputs):
        """The attention map ``a`` of Eq. 9, shape (batch, H, W, 1), in the spectral dtype
        (``2 sigmoid(s)`` with ``identity_init``: the gate ``call`` multiplies in).

        Useful to visualise where a trained module looks; ``call`` multiplies it into ``x``.
        """
        if not self.built:
            self.build(tuple(inputs.shape))
        compressed = ops.cast(self.pointwise(inputs)[..., 0], self._spectral_dtype)
        shape = ops.shape(compressed)
        height, width = shape[1], shape[2]
        low, high = spectral.split_frequencies(
            compressed, self._radius(height, width), self.filter_shape)
        images = {"x": compressed, "hfc": high, "lfc": low}
        names = sorted({name for pair in self._pairs for name in pair})
        # One batched SVD for all the images the pairs need.
        values = spectral.singular_values(ops.stack([images[n] for n in names], axis=1))
        s = {name: values[:, i] for i, name in enumerate(names)}
        square = isinstance(height, int) and height == width
        matrices = [
            spectral.outer_product_map(
                s[q], s[k], None if square else height, None if square else width)
            for q, k in self._pairs
        ]
        gate = ops.sigmoid(self.score_conv(ops.stack(matrices, axis=-1)))
        return 2.0 * gate if self.identity_init else gate

    def call(self, inputs):
        scores = self.attention_scores(inputs)
        return inputs * ops.cast(scores, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "cutoff": self.cutoff,
            "filter_shape": self.filter_shape,
            "relative_cutoff": self.relative_cutoff,
            "query": self.query,
            "kernel_size": self.kernel_size,
            "non_square": self.non_square,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "identity_init": self.identity_init,
        })
        return config
