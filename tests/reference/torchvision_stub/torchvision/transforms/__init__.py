import enum


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


from torchvision.transforms import functional  # noqa: E402,F401


def __getattr__(name):
    # Placeholder classes: timm defines transform pipelines at import time but the tests never
    # run them.
    return type(name, (), {"__init__": lambda self, *a, **k: None})
