"""Reading image files with errors that name the file and the problem."""

import os

import numpy as np


# Pillow modes that hold no colour (read as grey, never tripled before it is needed).
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class ImageReadError(ValueError):
    """An image file that cannot be used; the message names the file and why."""


def check_image_file(path):
    """Raises ``ImageReadError`` naming ``path`` unless it is an existing, non-empty file."""
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: file does not exist")
    if os.path.isdir(path):
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if os.path.getsize(path) == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes)")


def open_image(path):
    """The one check of an image file: ``check_image_file``, then Pillow's ``Image.open``
    (the header is parsed, no pixels are decoded). Returns the open image (use it in a
    ``with``); a format Pillow does not recognise or a header it cannot parse is an
    ``ImageReadError`` naming the file. Pillow's ``DecompressionBombError`` (an image that
    declares too many pixels) is raised as it is, for the caller to report."""
    from PIL import Image, UnidentifiedImageError

    check_image_file(path)
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except Image.DecompressionBombError:
        raise
    except Exception as err:  # Pillow raises many types for a mangled header
        raise ImageReadError(f"{path}: corrupt image header ({err})") from None


def read_image(path, mode="L"):
    """Reads ``path`` as a uint8 array: ``mode="L"`` gives (H, W), ``"RGB"`` gives (H, W, 3).

    Palette and 16-bit images (JAFFE ships palette TIFFs) are converted, never misread.
    """
    from PIL import Image

    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    try:
        with open_image(path) as img:
            img.load()
            if img.mode == "P":
                img = img.convert("RGB")
            elif img.mode.startswith("I;16") or img.mode == "I":
                # A fixed 16 -> 8 bit map (65535 -> 255, i.e. / 257), as for 8-bit files:
                # stretching each image by its own maximum changed its brightness.
                arr = np.asarray(img, dtype=np.float64)
                img = Image.fromarray(np.uint8(np.clip(np.round(arr / 257.0), 0, 255)))
            array = np.asarray(img.convert(mode))
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: corrupt or truncated image ({err})") from None
    if array.size == 0:
        raise ImageReadError(f"{path}: image has no pixels")
    return array


def load_pixels_from_path(path):
    """uint8 pixels of an image file, read with ``read_image``: as RGB when the file holds
    colour and as grey otherwise, so colour is never lost and grey is never tripled before it
    needs to be."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            colour = img.mode not in _GREY_MODES
    except Exception:  # read_image raises the error that names the file and the cause
        colour = False
    return read_image(path, "RGB" if colour else "L")
