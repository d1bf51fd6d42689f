"""The face-expression app: faces in photos, videos or a camera -> expressions (docs/app.md).

    from keras_fer.app import Predictor, annotate, sample_image_path
    predictor = Predictor()                        # the zoo's mini_xception.fer2013
    faces = predictor.predict(sample_image_path())  # [FacePrediction(box, label, ...)]

Modules, one job each:

* ``predictor``: ``Predictor`` (detect, crop, classify; Keras or TFLite backend),
  ``FacePrediction``;
* ``preprocessing``: ``load_image`` and ``CropPreprocessor`` (face crops -> model inputs,
  bytewise the training pipeline's standardisation), the bundled ``sample_image_path()``;
* ``drawing``: ``annotate`` (boxes and labels on the image);
* ``video``: ``process_video`` over a file or camera, ``VideoResult``;
* ``tflite``: conversion to TFLite (checked against Keras), ``TFLiteRunner``, the cache;
* ``demo``: ``keras-fer demo`` (a small model trained on drawn faces);
* ``cli``: the ``predict``, ``video`` and ``demo`` commands of ``keras-fer``.

Models come from ``keras_fer.zoo.loading.load_model`` (a ``keras.Model``, a ``.keras`` file or
a zoo name). Nothing here imports TensorFlow until it is used.
"""

from keras_fer.app.drawing import annotate
from keras_fer.app.predictor import DEFAULT_MODEL, FacePrediction, Predictor
from keras_fer.app.preprocessing import load_image, sample_image_path
from keras_fer.app.video import VideoResult, process_video

__all__ = ["DEFAULT_MODEL", "FacePrediction", "Predictor", "VideoResult", "annotate",
           "load_image", "process_video", "sample_image_path"]
