"""Face detection and cropping (keras_fer.faces)."""

from keras_fer.faces.align import eye_angle, eyes_from_landmarks, find_eyes, rotate_image
from keras_fer.faces.crop import FaceCrop, NoFaceError, crop_faces, square_box
from keras_fer.faces.detectors import (
    Detection,
    DnnFaceDetector,
    FaceDetector,
    HaarFaceDetector,
    YuNetFaceDetector,
)
