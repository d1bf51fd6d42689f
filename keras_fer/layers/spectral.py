"""Small frequency-domain and singular-value helpers, written with ``keras.ops`` only.

They take either Python ints or symbolic sizes, so the layers built on them also work when the
spatial size is unknown until run time (a functional model with ``Input((None, None, C))``).
"""

import keras
from keras import ops

FILTER_SHAPES = ("disc", "square")


def signed_frequencies(n):
    """Integer frequency of each index of an unshifted length-``n`` DFT.

    The same numbers as ``numpy.fft.fftfreq(n) * n``: ``0, 1, ..., -2, -1``. For even ``n`` the
    Nyquist index ``n // 2`` is reported as ``-n // 2``; its magnitude is what the masks use, so
    the sign convention does not matter there.
    """
    k = ops.arange(n, dtype="int32")
    return ops.where(k < (n + 1) // 2, k, k - n)


def low_frequency_mask(height, width, radius, filter_shape="disc", dtype="float32"):
    """1 on the centred low-frequency region of radius ``radius``, 0 elsewhere.

    The region is centred on the zero frequency, i.e. on the centre of the ``fftshift``-ed
    spectrum, but the mask is returned in the unshifted layout of ``fft2`` so no shift is needed.
    Radius is in frequency bins (DFT index units) on both axes. ``"disc"`` keeps
    ``ky**2 + kx**2 <= radius**2``, ``"square"`` keeps ``max(|ky|, |kx|) <= radius``.

    The mask depends on ``|k|`` only, so it is symmetric under ``k -> -k (mod n)``: multiplying
    the spectrum of a real image by it keeps the spectrum Hermitian and the inverse transform
    real.
    """
    if filter_shape not in FILTER_SHAPES:
        raise ValueError(f"filter_shape must be one of {FILTER_SHAPES}, got {filter_shape!r}")
    ky = ops.cast(signed_frequencies(height), "float32")[:, None]
    kx = ops.cast(signed_frequencies(width), "float32")[None, :]
    radius = ops.cast(radius, "float32")
    if filter_shape == "disc":
        inside = ky * ky + kx * kx <= radius * radius
    else:
        inside = ops.maximum(ops.abs(ky), ops.abs(kx)) <= radius
    return ops.cast(inside, dtype)


def split_frequencies(x, radius, filter_shape="disc"):
    """Splits real images ``x`` (..., H, W) into low- and high-frequency parts.

    ``low = real(ifft2(fft2(x) * L))`` with ``L = low_frequency_mask(...)`` and
    ``high = x - low``, which equals ``real(ifft2(fft2(x) * (1 - L)))`` by linearity of the DFT
    and costs one inverse transform instead of two. Both are real in exact arithmetic (see
    ``low_frequency_mask``); taking the real part only drops rounding noise. Taking the
    magnitude instead would rectify the filtered image, which is not Eq. 3 of the paper.
    """
    shape = ops.shape(x)
    mask = low_frequency_mask(shape[-2], shape[-1], radius, filter_shape, dtype=x.dtype)
    real, imag = ops.fft2((x, ops.zeros_like(x)))
    low = ops.ifft2((real * mask, imag * mask))[0]
    return low, x - low


def singular_values(x):
    """Singular values of the matrices in the last two axes, sorted in descending order.

    TensorFlow's gradient for ``compute_uv=False`` recomputes U and V and returns
    ``U diag(g) V^T``: finite even at repeated (e.g. all-zero) singular values, where the
    individual values are not differentiable but that expression is still a valid subgradient.
    """
    return ops.svd(x, full_matrices=False, compute_uv=False)


def outer_product_map(s_query, s_key, height=None, width=None):
    """``M[b, i, j] = s_query[b, i] * s_key[b, j]`` (Eq. 8), optionally zero-padded.

    With ``height``/``width`` given, the query vector is padded with zeros to ``height`` and the
    key vector to ``width`` first: for an H x W matrix with H != W these are the singular
    values of the full H x W Sigma (the eigenvalue square roots of ``A A^T`` and ``A^T A``,
    ``|H - W|`` of which are zero), so the map covers the H x W grid.
    """
    if height is not None:
        s_query = _pad_last(s_query, height)
    if width is not None:
        s_key = _pad_last(s_key, width)
    return s_query[..., :, None] * s_key[..., None, :]


def _pad_last(v, length):
    missing = length - ops.shape(v)[-1]
    if isinstance(missing, int) and missing == 0:
        return v
    pad = [[0, 0]] * (len(v.shape) - 1) + [[0, missing]]
    return ops.pad(v, pad)


def spectral_dtype(compute_dtype):
    """FFT/SVD precision for a layer computing in ``compute_dtype``.

    Half precision has no FFT/SVD kernels and the products of singular values overflow float16,
    so anything below float32 is lifted to float32.
    """
    return "float64" if keras.backend.standardize_dtype(compute_dtype) == "float64" else "float32"
