"""Prior-distribution label smoothing (PDLS) and its focal variant F-PDLS (seed 004, Eqs. 2-3).

For logits z of one sample, p = softmax(z) and

    L_F-PDLS = -sum_c (1 - p_c)^gamma * (alpha * t_c + (1 - alpha) * d_c) * log p_c      (Eq. 2-3)

where t is the one-hot majority label and d a prior label distribution: the sample's own
annotator votes (FERPlus) or a distribution fixed in advance. PDLS is the same loss with
gamma = 0 (Eq. 3 summed over the classes): a cross entropy against a target smoothed towards
the prior instead of towards the uniform distribution.
"""

import numpy as np

import keras
from keras import ops

_TIES = ("first", "split")


def _check_fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def _check_gamma(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"gamma must be a number >= 0, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"gamma must be a finite number >= 0, got {value}")
    return float(value)


def _check_ties(ties):
    if isinstance(ties, str):
        if ties not in _TIES:
            raise ValueError(f"ties must be one of {_TIES} or a permutation of the class "
                             f"indices, got {ties!r}")
        return ties
    try:
        order = [int(i) for i in ties]
    except (TypeError, ValueError):
        order = None
    if order is None or sorted(order) != list(range(len(order))) or len(order) < 2:
        raise ValueError(f"ties must be one of {_TIES} or a permutation of the class indices, "
                         f"got {ties!r}")
    return order


def _check_prior(prior):
    """A class-prior vector (C,) or a class-conditional prior matrix (C, C), rows summing to 1."""
    if prior is None:
        return None
    try:
        array = np.asarray(prior, dtype="float64")
    except (TypeError, ValueError):
        raise ValueError(f"prior must be a list of class probabilities, got {prior!r}") from None
    if array.ndim not in (1, 2) or array.shape[-1] < 2:
        raise ValueError(
            "prior must have shape (num_classes,) or (num_classes, num_classes) with "
            f"num_classes >= 2, got shape {array.shape}")
    if array.ndim == 2 and array.shape[0] != array.shape[1]:
        raise ValueError(f"prior must be a square (num_classes, num_classes) matrix, got shape "
                         f"{array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"prior must hold finite non-negative probabilities, got {prior!r}")
    sums = array.sum(axis=-1)
    if not np.allclose(sums, 1.0, atol=1e-4):
        raise ValueError(f"prior must sum to 1 (each row, for a matrix), got sums {sums.tolist()}")
    return array


def _num_classes(y_pred):
    num_classes = y_pred.shape[-1]
    if len(y_pred.shape) < 2 or num_classes is None or num_classes < 2:
        raise ValueError(
            "y_pred must have shape (batch, num_classes) with a known num_classes >= 2, got "
            f"shape {tuple(y_pred.shape)}")
    return num_classes


@keras.saving.register_keras_serializable(package="keras_fer")
class FPDLS(keras.losses.Loss):
    """Focal prior-distribution label smoothing, F-PDLS (seed 004, Eqs. 2-3).

    ``L = -sum_c (1 - p_c)^gamma (alpha t_c + (1 - alpha) d_c) log p_c`` per sample, with
    ``p = softmax(y_pred)`` (``from_logits=True``, the default, because the log-softmax of the
    logits is exact where ``log(softmax)`` of probabilities underflows).

    What ``y_true`` means depends on ``prior``:

    * ``prior=None``: ``y_true`` holds per-sample vote counts or a vote distribution, shape
      ``(batch, C)`` (FERPlus). ``d`` is the row normalised to sum to 1 and ``t`` the one-hot
      of its majority class. A row without any vote has no label: it contributes 0.
    * ``prior`` given at construction: ``y_true`` holds class labels, one-hot ``(batch, C)``
      or sparse integers ``(batch,)`` / ``(batch, 1)``; ``t`` is their one-hot (the argmax of a
      soft row) and ``d`` is ``prior`` for every sample when it is a vector ``(C,)``, or row
      ``k`` of ``prior`` for a sample of class ``k`` when it is a matrix ``(C, C)``. The matrix
      form is PDLS's own class-conditional prior (the ``d_kc`` of Eq. 3: how often class ``k``
      is confused with class ``c``); the vector form is a single prior for every sample.

    Ties for the majority (``ties``): ``"first"`` (default) gives the vote to the lowest class
    index among the tied ones, the rule of ``numpy.argmax``, so t stays one-hot; a permutation
    of the class indices gives the vote to the tied class that comes first in it (e.g.
    ``(6, 3, 5, 4, 0, 1, 2, 7)``, FERPlus's column order in the canonical vocabulary, agrees
    with the label ``keras_fer``'s FERPlus reader assigns); ``"split"`` shares ``t`` equally
    among the tied classes (order-free, but ``t`` is then no longer one-hot).

    Focal factor: ``keras.losses.CategoricalFocalCrossentropy(alpha=1, gamma)`` applied to the
    mixed target ``alpha t + (1 - alpha) d`` computes the same sum, but it takes ``log`` of
    softmax probabilities clipped to ``[1e-7, 1 - 1e-7]``: that caps each term at about 16.1
    and zeroes the gradient of confidently wrong predictions, and it differs from
    ``CategoricalCrossentropy(from_logits=True)`` (which uses log-softmax) in exactly the limit
    where PDLS must reduce to it. This class therefore uses log-softmax and computes
    ``1 - p_c`` as ``-expm1(log p_c)`` (accurate when p_c is close to 1); the tests check it
    against the Keras focal loss where clipping is inactive.

    Args:
        alpha: weight of the majority one-hot against the prior, in [0, 1]. 1 gives plain
            (focal) cross entropy on the majority label, 0 cross entropy on the prior. Neither
            seed 004 nor its PDLS reference states a value; 0.5 weighs them equally.
        gamma: focusing parameter >= 0 (focal loss default 2.0); 0 gives PDLS.
        prior: ``None`` (``y_true`` are votes), or a class-prior vector ``(C,)`` or matrix
            ``(C, C)`` whose rows sum to 1.
        from_logits: whether ``y_pred`` are logits (default True) or probabilities.
        ties: ``"first"``, ``"split"`` or a class-priority permutation, see above.
        reduction, name, dtype: as for every ``keras.losses.Loss``.
    """

    def __init__(self, alpha=0.5, gamma=2.0, prior=None, from_logits=True, ties="first",
                 reduction="sum_over_batch_size", name="fpdls", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = _check_fraction(alpha, "alpha")
        self.gamma = _check_gamma(gamma)
        self._prior = _check_prior(prior)
        self.prior = None if self._prior is None else self._prior.tolist()
        if not isinstance(from_logits, bool):
            raise ValueError(f"from_logits must be True or False, got {from_logits!r}")
        self.from_logits = from_logits
        self.ties = _check_ties(ties)
        self._dtype_arg = dtype

    def _majority(self, scores):
        """One-hot (or tie-split) majority of ``scores`` (batch, C); all-zero rows give 0."""
        top = ops.max(scores, axis=-1, keepdims=True)
        has_votes = ops.cast(top > 0, scores.dtype)
        num_classes = scores.shape[-1]
        if self.ties == "split":
            is_top = ops.cast(ops.equal(scores, top), scores.dtype)
            t = is_top / ops.sum(is_top, axis=-1, keepdims=True)
        elif self.ties == "first":
            t = ops.one_hot(ops.argmax(scores, axis=-1), num_classes, dtype=scores.dtype)
        else:
            if len(self.ties) != num_classes:
                raise ValueError(f"ties orders {len(self.ties)} classes but y_pred has "
                                 f"{num_classes}")
            # argmax takes the first maximum: look at the classes in priority order.
            order = ops.convert_to_tensor(self.ties, dtype="int32")
            first = ops.argmax(ops.take(scores, order, axis=-1), axis=-1)
            t = ops.one_hot(ops.take(order, first), num_classes, dtype=scores.dtype)
        return t * has_votes

    def targets(self, y_true, y_pred):
        """``(t, d)``: the majority one-hot and the prior distribution for each sample."""
        num_classes = _num_classes(y_pred)
        dtype = y_pred.dtype
        y_true = ops.cast(y_true, dtype)
        if self._prior is None:
            if tuple(y_true.shape[1:]) != tuple(y_pred.shape[1:]):
                raise ValueError(
                    "y_true must hold per-sample vote counts of the same shape as y_pred "
                    f"(batch, {num_classes}) when no prior is given, got shape "
                    f"{tuple(y_true.shape)}; pass prior=... for one-hot or sparse labels")
            total = ops.sum(y_true, axis=-1, keepdims=True)
            # A sample nobody voted on has no distribution: d = 0 rather than 0/0.
            d = y_true / ops.where(total > 0, total, ops.ones_like(total))
            return self._majority(y_true), d

        prior_classes = self._prior.shape[-1]
        if prior_classes != num_classes:
            raise ValueError(f"prior has {prior_classes} classes but y_pred has {num_classes}")
        sparse = len(y_true.shape) == len(y_pred.shape) - 1 or (
            len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1)
        if sparse:
            if len(y_true.shape) == len(y_pred.shape):
                y_true = ops.squeeze(y_true, axis=-1)
            t = ops.one_hot(ops.cast(y_true, "int32"), num_classes, dtype=dtype)
        elif tuple(y_true.shape[1:]) == tuple(y_pred.shape[1:]):
            t = self._majority(y_true)
        else:
            raise ValueError(
                f"y_true must be one-hot (batch, {num_classes}) or sparse (batch,) labels, got "
                f"shape {tuple(y_true.shape)}")
        prior = ops.convert_to_tensor(self._prior, dtype=dtype)
        d = ops.matmul(t, prior) if self._prior.ndim == 2 else ops.broadcast_to(prior, ops.shape(t))
        return t, d

    def call(self, y_true, y_pred):
        t, d = self.targets(y_true, y_pred)
        if self.from_logits:
            log_p = ops.log_softmax(y_pred, axis=-1)
        else:
            probs = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
            log_p = ops.log(ops.clip(probs, keras.backend.epsilon(), 1.0))
        weight = self.alpha * t + (1.0 - self.alpha) * d
        if self.gamma:
            # 1 - p = -expm1(log p) keeps precision near p = 1; the floor keeps the gradient of
            # (1 - p)^gamma finite for gamma < 1 where p rounds to exactly 1.
            one_minus_p = ops.maximum(-ops.expm1(log_p), keras.backend.epsilon())
            weight = weight * ops.power(one_minus_p, self.gamma)
        return -ops.sum(weight * log_p, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "alpha": self.alpha,
            "gamma": self.gamma,
            "prior": self.prior,
            "from_logits": self.from_logits,
            "ties": self.ties,
            "dtype": keras.saving.serialize_keras_object(self._dtype_arg),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_fer")
class PDLS(FPDLS):
    """Prior-distribution label smoothing: ``FPDLS`` with ``gamma = 0`` (seed 004, Eq. 3).

    ``L = -sum_c (alpha t_c + (1 - alpha) d_c) log p_c``: cross entropy against the majority
    one-hot smoothed towards the prior ``d`` (the sample's votes, or ``prior``). All other
    arguments and the meaning of ``y_true`` are those of ``FPDLS``.
    """

    def __init__(self, alpha=0.5, prior=None, from_logits=True, ties="first",
                 reduction="sum_over_batch_size", name="pdls", dtype=None):
        super().__init__(alpha=alpha, gamma=0.0, prior=prior, from_logits=from_logits, ties=ties,
                         reduction=reduction, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["gamma"]
        return config
