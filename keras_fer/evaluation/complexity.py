"""Parameter and FLOP counts."""

import numpy as np


def count_params(model):
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    total = int(sum(np.prod(w.shape) for w in model.weights))
    return {"trainable": trainable, "non_trainable": total - trainable, "total": total}


def count_flops(model, batch_size=1):
    """Floating-point operations of one inference pass (a multiply-add counts 2), from
    TensorFlow's graph profiler on the frozen inference graph; None if it cannot tell."""
    import tensorflow as tf

    try:
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2)

        spec = tf.TensorSpec([batch_size, *model.input_shape[1:]], tf.float32)
        fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        graph = convert_variables_to_constants_v2(fn).graph
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        info = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(),
                                             cmd="op", options=opts)
        return int(info.total_float_ops)
    except Exception:  # noqa: BLE001 - the profiler is best effort; the report says "n/a"
        return None
