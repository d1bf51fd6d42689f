"""keras_fer.layers"""

from keras_fer.layers.activations import (  # noqa: E402
    LrELU,
    LrLeakyReLU,
    LrReLU,
    LrReLUDense,
    SlopeClamp,
)
from keras_fer.layers.attention import (  # noqa: E402
    BatchAttention,
    CosineAttention,
    PatchBatchAttention,
)
from keras_fer.layers.bam import BAM  # noqa: E402
from keras_fer.layers.hf_attention import HighFrequencyAttention  # noqa: E402
from keras_fer.layers.onednn_safe import is_onednn_safe, make_onednn_safe  # noqa: E402
from keras_fer.layers.resizer import NeuralResizer  # noqa: E402
from keras_fer.layers.spatial_transformer import SpatialTransformer, affine_sample  # noqa: E402
