"""Choosing a ``tf.distribute`` strategy by name, so a recipe runs unchanged on any hardware."""

import json
import os

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")


def split_cpu(num_devices):
    """Splits the host CPU into ``num_devices`` logical devices (for tests and CPU data-parallel).

    Must run before TensorFlow initialises its devices; raises a clear error otherwise.
    """
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as err:
        if len(tf.config.list_logical_devices("CPU")) >= num_devices:
            return
        raise RuntimeError(f"split_cpu({num_devices}) must be called before TensorFlow "
                           f"initialises its devices: {err}") from None


def make_strategy(name="default", devices=None, tpu=None):
    """A strategy by name.

    - "default": TensorFlow's default (no distribution; one device, whatever is there).
    - "one_device": ``OneDeviceStrategy(devices[0])``.
    - "mirrored": synchronous data parallelism over ``devices`` (default: all GPUs, else CPU).
    - "multi_worker": ``MultiWorkerMirroredStrategy`` configured from ``TF_CONFIG``.
    - "tpu": ``TPUStrategy`` on the cluster resolved from ``tpu`` (name or address).
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy((devices or ["/cpu:0"])[0])
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        # On CPUs NCCL is not there; ReductionToOneDevice works everywhere.
        cross = None if tf.config.list_logical_devices("GPU") else \
            tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy 'multi_worker' needs the TF_CONFIG environment variable "
                             "(cluster and task); see docs/training.md")
        json.loads(os.environ["TF_CONFIG"])  # a malformed TF_CONFIG fails here, clearly
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """True on the worker that writes checkpoints, logs and reports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0)


def worker_index(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(getattr(resolver, "task_id", 0) or 0) if resolver is not None else 0


#: How long the other workers wait at the end of a run for the chief to finish writing the
#: model, history and evaluation report (t-SNE and Grad-CAM of a large validation set
#: included) before they exit anyway.
FINAL_BARRIER_TIMEOUT_S = 3600
_barriers = [0]


def wait_for_workers(strategy, name="train_end", timeout_s=FINAL_BARRIER_TIMEOUT_S):
    """Blocks until every worker of a multi-worker ``strategy`` has called it (nothing for
    other strategies). Called at the end of a run, after the chief's writes.

    Why: the chief hosts TensorFlow's coordination service. A worker that exits while the
    chief is still writing stops sending heartbeats, and some 10 s later the service declares
    it crashed: the chief logs ``StartAbort UNAVAILABLE ... The following tasks are unhealthy
    (stopped sending heartbeats) ... CoordinationServiceError`` for a run that went well.
    TensorFlow offers no call to leave the service cleanly (the agent's shutdown is not
    exposed to Python), so the workers leave together instead. A failed barrier (the chief
    crashed, or the timeout passed) is logged as a warning: this worker's part is done.
    """
    import logging

    import tensorflow as tf

    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return
    spec = resolver.cluster_spec()
    if sum(spec.num_tasks(job) for job in spec.jobs) < 2:
        return
    from tensorflow.python.eager import context

    _barriers[0] += 1
    barrier_id = f"keras_fer/{name}/{_barriers[0]}"
    try:
        if context.context().coordination_service is not None:
            context.context().wait_at_barrier(barrier_id, int(timeout_s * 1000))
        else:  # no coordination service: an all-reduce is a barrier too
            strategy.reduce(tf.distribute.ReduceOp.SUM,
                            strategy.run(lambda: tf.ones([])), axis=None)
    except (tf.errors.OpError, RuntimeError) as err:
        logging.getLogger("keras_fer.training").warning(
            "worker %d: the final barrier with the other workers failed (%s); exiting anyway",
            worker_index(strategy), str(err).splitlines()[0] if str(err) else type(err).__name__)
