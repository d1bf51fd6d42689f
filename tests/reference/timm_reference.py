"""timm as an independent reference for architecture-fidelity tests.

``import_timm()`` returns the timm module, or skips the calling test when torch/timm are not
installed. When the real torchvision is absent a small stub is put on ``sys.path`` first.
"""

import importlib.util
import os
import sys

import numpy as np
import pytest

_STUB = os.path.join(os.path.dirname(__file__), "torchvision_stub")


def import_timm():
    pytest.importorskip("torch")
    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed")
    if importlib.util.find_spec("torchvision") is None and _STUB not in sys.path:
        sys.path.insert(0, _STUB)
    import timm

    return timm


def timm_forward(torch_model, images_nhwc):
    """Runs a timm model in eval mode on NHWC numpy images; returns numpy logits/features."""
    import torch

    torch_model.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(np.transpose(images_nhwc, (0, 3, 1, 2))))
        return torch_model(x.float()).numpy()
