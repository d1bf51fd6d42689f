"""The keras-fer model zoo: named, versioned, hash-checked models in the timm manner.

    from keras_fer import zoo
    zoo.list_models("mini_xception.*", pretrained=True)
    zoo.describe("mini_xception.fer2013").summary()
    model = zoo.load("mini_xception.fer2013")                  # predict on [0, 255] pixels
    model = zoo.load("mini_xception.fer2013", num_classes=3)   # fine-tune: new head
    served = zoo.load_serving("mini_xception.fer2013")         # SavedModel for TF Serving
    zoo.publish(model, "mini_xception.mydata", metrics=report, dataset=..., recipe=...)

See docs/zoo.md (entries, lookup, publishing) and docs/serving.md (TF Serving).
"""

from keras_fer.zoo.entry import ZooEntry
from keras_fer.zoo.loading import load, load_serving, transfer_weights, with_new_head
from keras_fer.zoo.publish import publish, summarize_metrics
from keras_fer.zoo.registry import describe, list_models
from keras_fer.zoo.serving import (
    decode_images,
    export_serving,
    predict_response,
    rest_request_body,
)
from keras_fer.zoo.store import HashMismatchError, MissingFileError, ZooFileError, home

__all__ = [
    "HashMismatchError", "MissingFileError", "ZooEntry", "ZooFileError", "decode_images",
    "describe", "export_serving", "home", "list_models", "load", "load_serving",
    "predict_response", "publish", "rest_request_body", "summarize_metrics",
    "transfer_weights", "with_new_head",
]
