"""Library CNN families: keras-hub's VGG16/VGG19, ResNet50-D, EfficientNet-B0 and Xception,
and keras.applications' InceptionV3, MobileNetV2 and ResNet50, as registered keras-fer
architectures (importing this package registers them).
"""

from keras_fer.models.library_cnns.applications import ZeroPaddedAveragePooling2D
from keras_fer.models.library_cnns.common import LibraryFamily, load_weights
from keras_fer.models.library_cnns.convert import (
    KerasHubPorter,
    convert_efficientnet,
    convert_inception_v3,
    convert_resnet_d,
    convert_vgg,
    convert_xception,
)
from keras_fer.models.library_cnns.model import CONFIGS, FAMILIES, build_library
