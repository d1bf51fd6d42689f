"""Evaluation (keras_fer.evaluation): metrics, pictures and the report of a trained model."""

from keras_fer.evaluation.complexity import count_flops, count_params
from keras_fer.evaluation.gradcam import grad_cam, overlay
from keras_fer.evaluation.metrics import (
    classification_metrics,
    confusion_matrix,
    restricted_accuracy,
)
from keras_fer.evaluation.report import (
    evaluate_model,
    evaluate_split,
    markdown_report,
    predict_with_features,
)
