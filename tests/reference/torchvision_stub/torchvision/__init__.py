"""A stand-in for torchvision, used only when the real one is absent.

timm imports a few torchvision names at import time; the wheel on the package index needs CUDA
libraries, so the tests give timm just enough to import and build models on the CPU. Nothing
here is used to compute a reference output except FrozenBatchNorm2d, written in plain torch.
"""

__version__ = "0.0.0-keras-fer-stub"
