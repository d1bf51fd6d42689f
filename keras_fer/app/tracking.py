"""Faces followed across video frames: steady boxes and labels between detections.

``FaceTracks`` gives each face an identity from frame to frame:

* on an analysed frame (detected and classified), ``update`` matches the new faces to the
  tracks of the previous analysed frame by the IoU of their boxes (greedy, highest first,
  at least ``min_iou``); a matched face continues its track, an unmatched one starts a new
  track, and a track without a face ends;
* on the frames in between (``--every N``), ``follow`` moves each track's box to where its
  face went, by normalised cross-correlation (``cv2.matchTemplate``) of the face as last seen
  inside a window around the old box, on grey frames reduced so that the face is at most
  ``template_side`` pixels, the peak refined to a fraction of a reduced pixel by a parabola
  (about 0.2 ms a face). No classification runs there;
* the label shown is the argmax of the track's probabilities averaged over its last
  ``window`` analysed frames (``window=1``: no smoothing), so that a face whose expression
  hovers between two classes does not flip label every frame.
"""

import collections
import dataclasses

import numpy as np


def box_iou(a, b):
    """IoU of two ``(x, y, w, h)`` boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclasses.dataclass
class _Track:
    prediction: object  # the FacePrediction as last shown (box moved by follow)
    history: collections.deque
    template: object = None
    scale: float = 1.0


class FaceTracks:
    """Identities, box tracking and probability smoothing for a video (module docstring).

    ``window``: analysed frames averaged per face (>= 1; 1 turns smoothing off).
    ``min_iou``: least IoU for a face to continue a track. ``template_side``: the face is
    matched at most this many pixels wide.
    """

    def __init__(self, window=5, min_iou=0.3, template_side=32):
        from keras_fer.validation import positive_int

        self.window = positive_int(window, "window")
        self.min_iou = float(min_iou)
        self.template_side = positive_int(template_side, "template_side")
        self.tracks = []

    def update(self, predictions, grey):
        """New faces of an analysed frame (``FacePrediction``s) and its grey frame ->
        the predictions to show, with smoothed probabilities, in the same order."""
        pairs = sorted(((box_iou(t.prediction.box, p.box), i, j)
                        for i, t in enumerate(self.tracks) for j, p in enumerate(predictions)),
                       key=lambda item: -item[0])
        owner, used = {}, set()
        for value, i, j in pairs:
            if value < self.min_iou:
                break
            if i not in used and j not in owner:
                used.add(i)
                owner[j] = self.tracks[i]
        tracks = []
        for j, prediction in enumerate(predictions):
            track = owner.get(j) or _Track(prediction, collections.deque(maxlen=self.window))
            track.history.append([prediction.probabilities[n] for n in prediction.probabilities])
            track.prediction = self._smoothed(prediction, track.history)
            self._remember(track, grey)
            tracks.append(track)
        self.tracks = tracks
        return [t.prediction for t in tracks]

    def follow(self, grey):
        """The tracks' predictions moved to where their faces are in this grey frame."""
        for track in self.tracks:
            shift = self._match(track, grey)
            if shift is not None:
                track.prediction = _moved(track.prediction, shift, grey.shape)
                self._remember(track, grey)
        return [t.prediction for t in self.tracks]

    @staticmethod
    def _smoothed(prediction, history):
        mean = np.mean(np.asarray(history, np.float64), axis=0)
        names = list(prediction.probabilities)
        return dataclasses.replace(prediction, label=names[int(np.argmax(mean))],
                                   probabilities={n: float(v) for n, v in zip(names, mean)})

    def _remember(self, track, grey):
        import cv2

        x, y, w, h = track.prediction.box
        if w < 4 or h < 4:
            track.template = None
            return
        track.scale = min(1.0, self.template_side / max(w, h))
        patch = grey[y:y + h, x:x + w]
        size = (max(2, int(round(w * track.scale))), max(2, int(round(h * track.scale))))
        track.template = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)

    @staticmethod
    def _match(track, grey):
        """``(dx, dy)`` in frame pixels, or ``None`` when the face cannot be matched."""
        import cv2

        if track.template is None:
            return None
        x, y, w, h = track.prediction.box
        height, width = grey.shape
        x0, y0 = max(0, x - w // 2), max(0, y - h // 2)
        x1, y1 = min(width, x + w + w // 2), min(height, y + h + h // 2)
        s = track.scale
        window = cv2.resize(grey[y0:y1, x0:x1], (max(1, int(round((x1 - x0) * s))),
                                                  max(1, int(round((y1 - y0) * s)))),
                            interpolation=cv2.INTER_AREA)
        th, tw = track.template.shape
        if window.shape[0] < th or window.shape[1] < tw:
            return None
        scores = cv2.matchTemplate(window, track.template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(scores)
        if not np.isfinite(best) or best < 0.3:
            return None
        fx = bx + _vertex(scores[by, bx - 1:bx + 2]) if 0 < bx < scores.shape[1] - 1 else bx
        fy = by + _vertex(scores[by - 1:by + 2, bx]) if 0 < by < scores.shape[0] - 1 else by
        return (int(round(x0 + fx / s)) - x, int(round(y0 + fy / s)) - y)


def _vertex(three):
    """Sub-pixel offset of a peak from three samples around it (a parabola's vertex)."""
    left, mid, right = (float(v) for v in three)
    curve = left - 2 * mid + right
    return float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5)) if curve < 0 else 0.0


def _moved(prediction, shift, shape):
    """``prediction`` with its boxes shifted by ``shift``, kept inside the frame."""
    height, width = shape[:2]

    def move(box):
        if box is None:
            return None
        x, y, w, h = box
        return (int(min(max(x + shift[0], 0), max(width - w, 0))),
                int(min(max(y + shift[1], 0), max(height - h, 0))), w, h)

    return dataclasses.replace(prediction, box=move(prediction.box),
                               detection_box=move(prediction.detection_box))
