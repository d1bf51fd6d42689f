"""Drawing the app's results: each face's box and "label probability" on the image."""

import numpy as np

# One colour per canonical class (RGB), so that a label is recognisable at a glance in a video.
_LABEL_COLOURS = {
    "angry": (230, 40, 40), "disgust": (120, 170, 30), "fear": (160, 60, 200),
    "happy": (250, 200, 0), "sad": (40, 110, 230), "surprise": (250, 120, 200),
    "neutral": (200, 200, 200), "contempt": (140, 90, 50),
}
_DEFAULT_COLOUR = (0, 200, 255)


def annotate(image, predictions, thickness=None):
    """A copy of ``image`` as uint8 RGB (grey is replicated) with each face's box and
    "label probability" drawn (OpenCV). Line width and text size follow the image and box
    sizes, so the labels stay legible on a 4K frame and a 200-pixel crop alike."""
    import cv2

    from keras_fer.faces.detectors import as_rgb_or_grey

    out = as_rgb_or_grey(image)
    out = np.repeat(out[:, :, None], 3, axis=2) if out.ndim == 2 else out.copy()
    height, width = out.shape[:2]
    line = thickness or max(1, int(round(min(height, width) / 250)))
    for p in predictions:
        x, y, w, h = (int(v) for v in p.box)
        colour = _LABEL_COLOURS.get(p.label, _DEFAULT_COLOUR)
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), colour, line)
        text = f"{p.label} {p.probability:.0%}"
        scale = float(np.clip(w / 220.0, 0.35, 1.5))
        weight = max(1, int(round(scale * 1.5)))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
        # Above the box when there is room, else just inside its top edge.
        top = y - th - base - 2 * line if y - th - base - 2 * line >= 0 else y
        cv2.rectangle(out, (x, top), (x + tw + 2 * line, top + th + base + 2 * line), colour, -1)
        cv2.putText(out, text, (x + line, top + th + line), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), weight, cv2.LINE_AA)
    return out
