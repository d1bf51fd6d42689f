"""Datasets of whole photographs turned into face crops, framed as the app frames faces.

JAFFE's pictures are 256x256 portraits: the face covers about 40 % of the area, with hair,
shoulders and background around it. FER2013, the zoo's backbone data, and the app's input
(``keras_fer.faces.crop_faces``) are tight face crops. A model fine-tuned on whole portraits
learns a framing that neither its pretraining nor the app ever shows it, so recipes crop the
faces first, with the app's detector and box rule.
"""

import dataclasses

import numpy as np

from keras_fer.datasets.records import FERDataset


def crop_to_faces(dataset, detector=None, margin=0.0, threshold=0.5, square=True):
    """A copy of ``dataset`` whose images are the most confident face of each picture.

    Each image is cropped to ``keras_fer.faces.square_box`` of the detection (the app's rule:
    the box's longer side, centred, widened by ``margin`` of it on every side) at the
    picture's own resolution; the pipeline resizes it to the model's input like any image.
    ``detector``: any ``keras_fer.faces.FaceDetector`` (default: the app's Haar detector).
    Records keep their label, subject, split and distribution; ``meta["face_box"]`` holds the
    crop region ``(x, y, w, h)`` in the original picture. ``info["face_crop"]`` records the
    settings.

    Raises ``keras_fer.faces.NoFaceError`` naming every picture without a face above
    ``threshold``: dropping them would change the dataset without a trace, and keeping them
    whole would mix two framings.
    """
    from keras_fer.datasets.image_io import load_pixels_from_path
    from keras_fer.faces import NoFaceError, square_box
    from keras_fer.faces.crop import default_detector

    detector = default_detector() if detector is None else detector
    records, missing = [], []
    for record in dataset:
        image = record.image if record.image is not None else load_pixels_from_path(record.path)
        faces = [d for d in detector.detect(image) if d.confidence > threshold]
        if not faces:
            missing.append(record.source)
            continue
        best = max(faces, key=lambda d: d.confidence)
        x, y, w, h = square_box(best.box, image.shape, square=square, margin=margin)
        meta = dict(record.meta or {}, face_box=(x, y, w, h))
        records.append(dataclasses.replace(record, image=np.ascontiguousarray(
            image[y:y + h, x:x + w]), path=None, meta=meta))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                          else "")
        raise NoFaceError(f"{dataset.name}: no face with confidence > {threshold} in "
                          f"{len(missing)} of {len(dataset)} images: {shown}")
    info = dict(dataset.info, face_crop={"detector": type(detector).__name__, "margin": margin,
                                         "threshold": threshold, "square": square})
    return FERDataset(dataset.name, records, dataset.classes, dataset.skipped, info)
