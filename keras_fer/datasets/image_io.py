"""Reading image files with errors that name the file and the problem."""

import os

import numpy as np


class ImageReadError(ValueError):
    """An image file that cannot be used; the message names the file and why."""


def read_image(path, mode="L"):
    """Reads ``path`` as a uint8 array: ``mode="L"`` gives (H, W), ``"RGB"`` gives (H, W, 3).

    Palette and 16-bit images (JAFFE ships palette TIFFs) are converted, never misread.
    """
    from PIL import Image, UnidentifiedImageError

    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: file does not exist")
    if os.path.getsize(path) == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "P":
                img = img.convert("RGB")
            elif img.mode.startswith("I;16") or img.mode == "I":
                # A fixed 16 -> 8 bit map (65535 -> 255, i.e. / 257), as for 8-bit files:
                # stretching each image by its own maximum changed its brightness.
                arr = np.asarray(img, dtype=np.float64)
                img = Image.fromarray(np.uint8(np.clip(np.round(arr / 257.0), 0, 255)))
            array = np.asarray(img.convert(mode))
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: corrupt or truncated image ({err})") from None
    if array.size == 0:
        raise ImageReadError(f"{path}: image has no pixels")
    return array
