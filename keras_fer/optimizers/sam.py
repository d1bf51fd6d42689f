"""Sharpness-aware minimisation (Foret et al. 2021), the optimiser of seed 003's ViT-B/16/SAM.

SAM minimises ``max_{||e|| <= rho} L(w + e)``. Its first-order step (Foret et al., Eq. 2 and
Algorithm 1) takes two gradients per update:

    g  = grad L(w)                                   (pass 1)
    e  = rho * g / (||g||_2 + epsilon)               (global norm over all trainable variables)
    g' = grad L(w + e)                               (pass 2)
    w <- base_optimizer(w, g')

ASAM (Kwon et al. 2021, ``adaptive=True``) scales the neighbourhood with the weights,
``T = |w| + eta``: ``e = rho * T^2 g / ||T g||``, which makes the sharpness measure invariant to
rescaling of the weights.

Keras 3 optimisers apply given gradients and cannot compute gradients themselves, so SAM lives in
the training step: ``SAMModel`` wraps any model and overrides ``train_step``; any Keras optimizer
given to ``compile`` (SGD, Adam, AdamW, ...) is SAM's base optimiser. See ``docs/sam.md``.
"""

import copy
import math
import numbers
import warnings

import keras
from keras import ops


def _sum_over_replicas(grads):
    """All-reduce (SUM) ``grads`` across replicas, so every replica holds the global gradient.

    Keras divides each replica's loss by the number of replicas, so the sum over replicas is
    the gradient of the loss averaged over the global batch. Without it each replica would
    perturb the shared weights along its own local gradient.
    """
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync <= 1:
        return grads
    present = [i for i, g in enumerate(grads) if g is not None]
    reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
    grads = list(grads)
    for i, g in zip(present, reduced):
        grads[i] = g
    return grads


def _check_positive(value, name, allow_zero=False):
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real)
          and math.isfinite(value) and (value >= 0 if allow_zero else value > 0))
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def sam_perturbation(grads, variables, rho, adaptive=False, eta=0.01, epsilon=1e-12):
    """SAM's ascent step ``e`` for each variable (``None`` where the gradient is ``None``).

    Plain SAM: ``e = rho g / (||g|| + epsilon)``; adaptive (ASAM): ``e = rho T^2 g /
    (||T g|| + epsilon)`` with ``T = |w| + eta``. The norm is the global L2 norm over all the
    given gradients. A zero gradient gives ``e = 0`` (``epsilon`` keeps 0 / 0 away).
    """
    scales = [None if g is None else (ops.abs(v) + eta if adaptive else None)
              for g, v in zip(grads, variables)]
    scaled = [None if g is None else (g if s is None else g * s) for g, s in zip(grads, scales)]
    squares = [ops.sum(ops.square(ops.cast(g, "float32"))) for g in scaled if g is not None]
    if not squares:
        return [None] * len(grads)
    norm = ops.sqrt(ops.sum(ops.stack(squares)))
    factor = rho / (norm + epsilon)
    perturbation = []
    for g, s in zip(scaled, scales):
        if g is None:
            perturbation.append(None)
            continue
        e = g * ops.cast(factor, g.dtype)
        perturbation.append(e if s is None else e * s)
    return perturbation


@keras.saving.register_keras_serializable(package="keras_fer")
class SAMModel(keras.Model):
    """Trains ``model`` with sharpness-aware minimisation (Foret et al. 2021).

    ``SAMModel(model, rho=0.05)`` behaves like ``model`` (``call`` forwards to it) but its
    ``train_step`` does SAM's two passes; compile it with any loss, metrics and Keras optimizer,
    which becomes the base optimiser. TensorFlow backend only (a ``tf.GradientTape`` step).

    One step, on a batch:

    1. Pass 1 at ``w``: forward in training mode, loss, gradient ``g``. Under ``tf.distribute``
       ``g`` is all-reduced (SUM) across replicas first, so that ``e`` is computed from the
       global-batch gradient and is the same on every replica.
    2. ``e = rho g / (||g|| + epsilon)`` (or ASAM's, ``adaptive=True``), global L2 norm over all
       trainable variables. The loss scale of a ``LossScaleOptimizer`` cancels in ``e``.
    3. Pass 2 at ``w + e``: evaluated *statelessly* (``keras.StatelessScope`` maps every
       trainable variable to ``w + e``) and differentiated with respect to ``w + e``. No
       variable is written, so nothing has to be restored afterwards, ``w`` comes back bit for
       bit, and there is no cross-replica assignment to synchronise under ``tf.distribute``.
       Weight regularisers and ``add_loss`` terms are evaluated at ``w + e`` too.
    4. ``optimizer.apply_gradients(g')`` on ``w``: the base optimiser all-reduces ``g'`` across
       replicas itself.

    State and metrics: batch-norm moving statistics (and every other non-trainable update)
    come from pass 1 only, at the weights actually trained and served; pass 2's are dropped.
    Random layers (dropout) draw the same mask in both passes (pass 2 starts from the seed
    state pass 1 started from, as in Foret et al.'s reference code), so ``g'`` is the gradient
    of the same sampled loss. The reported loss and the compiled metrics are those of pass 1,
    i.e. ``L(w)`` before the update, the quantity a plain ``fit`` reports. A step costs two
    forward and two backward passes.

    Saving: ``SAMModel`` saves and loads as a ``.keras`` file with its inner model; for serving,
    export or save ``sam.inner`` alone (it carries the same weights).

    Args:
        model: the Keras model to train.
        rho: neighbourhood radius > 0 (0.05 in Foret et al. for SAM; ASAM uses larger values,
            e.g. 0.5 to 2).
        adaptive: ASAM's weight-scaled neighbourhood.
        eta: ASAM's offset in ``T = |w| + eta`` (>= 0; 0.01 as in Kwon et al.), so that
            weights at zero are still perturbed. Unused unless ``adaptive``.
        epsilon: added to the gradient norm (> 0).
    """

    def __init__(self, model, rho=0.05, adaptive=False, eta=0.01, epsilon=1e-12, **kwargs):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("SAMModel's train_step needs the TensorFlow backend, got "
                               f"{keras.backend.backend()!r}")
        super().__init__(**kwargs)
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(copy.deepcopy(model))
        if not isinstance(model, keras.layers.Layer):
            raise ValueError(f"model must be a keras Model, got {type(model).__name__}")
        self.inner = model
        self.rho = _check_positive(rho, "rho")
        if not isinstance(adaptive, bool):
            raise ValueError(f"adaptive must be True or False, got {adaptive!r}")
        self.adaptive = adaptive
        self.eta = _check_positive(eta, "eta", allow_zero=True)
        self.epsilon = _check_positive(epsilon, "epsilon")

    def call(self, inputs, training=None):
        return self.inner(inputs, training=training)

    def _loss_and_predictions(self, x, y, sample_weight):
        y_pred = self(x, training=True)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=True)
        return loss, y_pred

    def _track_loss(self, loss, x):
        """The compiled "loss" metric, as ``keras.Model.train_step`` updates it."""
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch = ops.shape(next(t for t in keras.tree.flatten(x) if t is not None))[0]
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss * ops.cast(replicas, loss.dtype), sample_weight=batch)
                break

    def train_step(self, data):
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = list(self.trainable_variables)
        weight_ids = {id(v) for v in self.non_trainable_weights}
        # SeedGenerator states: the only non-trainable state pass 2 must see as pass 1 did.
        rng_states = [v for v in self.non_trainable_variables if id(v) not in weight_ids]
        rng_before = [ops.copy(v.value) for v in rng_states]

        with tf.GradientTape() as tape:
            loss, y_pred = self._loss_and_predictions(x, y, sample_weight)
            scaled = self.optimizer.scale_loss(loss)
        self._track_loss(loss, x)
        if not variables:
            warnings.warn("The model does not have any trainable weights.")
            return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

        grads = tape.gradient(scaled, variables)
        grads = [None if g is None else ops.convert_to_tensor(g) for g in grads]
        grads = _sum_over_replicas(grads)
        values = [v.value for v in variables]
        e = sam_perturbation(grads, values, self.rho, self.adaptive, self.eta, self.epsilon)
        perturbed = [w if d is None else w + d for w, d in zip(values, e)]

        with tf.GradientTape() as tape:
            tape.watch(perturbed)
            mapping = list(zip(variables, perturbed)) + list(zip(rng_states, rng_before))
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True):
                loss_2, _ = self._loss_and_predictions(x, y, sample_weight)
            scaled_2 = self.optimizer.scale_loss(loss_2)
        sharp_grads = tape.gradient(scaled_2, perturbed)
        # Variables without a first-pass gradient are left alone, as plain fit() would.
        sharp_grads = [None if g is None else s for g, s in zip(grads, sharp_grads)]
        self.optimizer.apply_gradients(zip(sharp_grads, variables))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.inner),
            "rho": self.rho,
            "adaptive": self.adaptive,
            "eta": self.eta,
            "epsilon": self.epsilon,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # deserialize_keras_object consumes nested config dicts: work on a copy.
        config = copy.deepcopy(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"),
                                                      custom_objects=custom_objects)
        return cls(model, **config)
