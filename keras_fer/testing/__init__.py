"""Test helpers shared by keras-fer's own tests and by users' custom layers."""

from keras_fer.testing.harness import (
    check_export,
    check_gradients,
    check_saving,
    check_trainable,
    numeric_gradient,
    run_layer_test,
    run_model_test,
)
