"""``keras-fer predict``, ``keras-fer video`` and ``keras-fer demo``: the app's commands.

Registered into the main parser (``keras_fer.cli``) by ``add_app_parsers(subparsers)``.
Nothing heavy is imported here, so ``keras-fer --help`` stays instant; TensorFlow loads when
a command runs.
"""

import argparse
import json
import os
import sys

from keras_fer.app.predictor import BACKENDS, DEFAULT_MODEL, DETECTORS

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Pre-wrapped: the raw formatter keeps the examples' alignment, so it wraps nothing.
_PREDICT_DESCRIPTION = """\
Detects every face in each IMAGE, classifies its expression and prints the boxes and class
probabilities. With no IMAGE it uses a sample photo bundled with keras-fer. Faces are cropped
and preprocessed exactly as the training images were (a square on the detector box, grey,
bilinear resize to the model's input size).
"""

_VIDEO_DESCRIPTION = """\
Reads SOURCE frame by frame (OpenCV), detects and classifies every face and writes a video with
the boxes and labels drawn.
"""

_PREDICT_EPILOG = """\
examples:
  keras-fer predict                          # the bundled sample photo
  keras-fer predict party.jpg --out annotated.png
  keras-fer predict photos/*.jpg --json > results.json
  keras-fer predict photos/ --csv faces.csv  # a folder, one row per face
  keras-fer predict face48.png --no-detect   # an already-cropped face (e.g. FER2013)
  keras-fer predict photo.jpg --model my_model.keras

Output: one block per image, one row per face: the box (x, y, w, h) of the region that was
classified (in image pixels), the detector's confidence, the predicted label and the
probability of every class. With --json, one JSON document with the same data.
"""

_VIDEO_EPILOG = """\
examples:
  keras-fer video clip.mp4 --out clip_annotated.mp4
  keras-fer video clip.mp4 --every 3          # analyse 1 frame in 3: faster, boxes lag a little
  keras-fer video 0 --max-frames 300          # camera 0, 300 frames (Ctrl-C stops early)

Nothing is shown on screen (it runs headless); the annotated video is written to --out. At
the end it prints the frames processed, the faces found and the frames per second of
decoding + detection + classification (drawing and encoding excluded).
"""


def _number_type(convert, minimum, what, what_bounded):
    """An argparse ``type``: ``convert(text)``, refused when not a number or below ``minimum``."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what_bounded}, got {value}")
        return value

    return parse


_positive_int = _number_type(int, 1, "a positive integer", "a positive integer")
_fraction = _number_type(float, 0, "a number", "a number >= 0")


def _add_model_options(parser):
    group = parser.add_argument_group("model and face detection")
    group.add_argument("--model", default=DEFAULT_MODEL,
                       help="a .keras file or a model-zoo name (keras_fer.zoo.list_models()) "
                       "(default: %(default)s)")
    group.add_argument("--detector", choices=DETECTORS, default="haar",
                       help="face detector: haar (OpenCV's Haar cascade, built in, tuned for "
                       "speed), haar-fer (the same cascade with fer's settings: full "
                       "resolution, about 3x slower) or yunet (needs --detector-model) "
                       "(default: %(default)s)")
    group.add_argument("--detector-model", metavar="ONNX",
                       help="local path of the YuNet ONNX file for --detector yunet")
    group.add_argument("--min-face", type=_positive_int, default=50, metavar="PIXELS",
                       help="ignore faces smaller than this; 32 finds smaller faces, at about "
                       "2.5x the detection time (default: %(default)s, as fer)")
    group.add_argument("--margin", type=_fraction, default=0.0,
                       help="widen each square face crop by this fraction of its side on "
                       "every side, e.g. 0.1 (default: %(default)s)")
    group.add_argument("--threshold", type=_fraction, default=0.5,
                       help="keep faces whose detector confidence is above this "
                       "(default: %(default)s)")
    group.add_argument("--backend", choices=BACKENDS, default="auto",
                       help="how the model runs: tflite (a float32 TFLite copy of the model, "
                       "converted once and cached in $KERAS_FER_HOME/tflite; same "
                       "probabilities, about ten times faster per face), keras, or auto "
                       "(tflite, else keras with a warning) (default: %(default)s)")
    group.add_argument("--colour", action="store_true",
                       help="feed colour faces to an RGB model trained on colour images "
                       "(default: faces are made grey, as the FER datasets are)")


def add_predict_parsers(subparsers):
    """Adds the ``predict`` and ``video`` commands to an argparse ``subparsers`` object."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "predict", formatter_class=fmt, epilog=_PREDICT_EPILOG,
        help="find the faces in images and classify their expressions",
        description=_PREDICT_DESCRIPTION)
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files (JPEG, PNG, BMP, TIFF, ...) or folders (walked for "
                   "image files, sub-folders included); default: the bundled sample")
    _add_model_options(p)
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print one JSON document instead of tables")
    out.add_argument("--out", metavar="FILE_OR_DIR",
                     help="write annotated copies (boxes, labels): a file name for one "
                     "image (e.g. annotated.png), else a folder (IMAGE_annotated.png in it)")
    out.add_argument("--csv", metavar="FILE",
                     help="write one CSV row per face (file, face, box, score, label, "
                     "probabilities; a row with an error column for a file without a face or "
                     "unreadable); per-image tables are then not printed")
    out.add_argument("--jsonl", metavar="FILE",
                     help="the same rows as --csv, one JSON object per line")
    out.add_argument("--no-detect", action="store_true",
                     help="skip face detection: each image is one face crop")
    p.set_defaults(func=_cmd_predict)

    v = subparsers.add_parser(
        "video", formatter_class=fmt, epilog=_VIDEO_EPILOG,
        help="classify the expressions of the faces in a video file or camera stream",
        description=_VIDEO_DESCRIPTION)
    v.add_argument("source", metavar="SOURCE", help="a video file, or a camera index such as 0")
    _add_model_options(v)
    vo = v.add_argument_group("output and speed")
    vo.add_argument("--out", metavar="FILE",
                    help="annotated video to write (mp4v; MJPG .avi if this OpenCV cannot "
                    "write mp4v) (default: SOURCE_annotated.mp4 in the current folder)")
    vo.add_argument("--every", type=_positive_int, default=1, metavar="N",
                    help="analyse one frame in N; frames in between reuse the last boxes and "
                    "labels (default: %(default)s, every frame)")
    vo.add_argument("--max-frames", type=_positive_int, metavar="N",
                    help="stop after N frames (default: the whole video; a camera runs until "
                    "Ctrl-C)")
    vo.add_argument("--no-track", action="store_true",
                    help="with --every N: hold the boxes still between analysed frames "
                    "(default: each face's box follows it, by template matching)")
    vo.add_argument("--smooth", type=_positive_int, default=5, metavar="N",
                    help="label each face by its probabilities averaged over its last N "
                    "analysed frames, so labels do not flicker (default: %(default)s)")
    vo.add_argument("--no-smooth", dest="smooth", action="store_const", const=1,
                    help="no smoothing: each analysed frame's own probabilities (--smooth 1)")
    vo.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(func=_cmd_video)
    return p, v


def add_demo_parser(subparsers):
    """Adds the ``demo`` command (``keras_fer.app.demo.run_demo``)."""
    demo = subparsers.add_parser(
        "demo",
        help="train a small attention CNN on embedded synthetic faces (no download, CPU only)",
        description="Draws synthetic cartoon faces, trains a compact CNN with high-frequency "
        "attention using SAM and the F-PDLS loss, prints held-out accuracy and exports the "
        "model (.keras + SavedModel).",
    )
    demo.add_argument("--out", default="keras-fer-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=4, help="training epochs (default: %(default)s)")
    demo.set_defaults(func=_cmd_demo)
    return demo


def _cmd_demo(args):
    from keras_fer.app.demo import run_demo

    acc = run_demo(out_dir=args.out, epochs=args.epochs)
    return 0 if acc > 0 else 1


# What loading a model or reading a source raises for a user's mistake (a zoo look-up may
# raise KeyError/LookupError for an unknown name): reported in one line, not a traceback.
_LOAD_ERRORS = (ValueError, OSError, LookupError)


def _error(command, err):
    print(f"keras-fer {command}: error: {err}", file=sys.stderr)


def _predictor(args):
    from keras_fer import _quiet_tf
    from keras_fer.app.predictor import Predictor

    # TFLite announces its CPU delegate on stderr when the interpreter is made.
    with _quiet_tf.filtered_stderr(_quiet_tf.log_level()):
        return Predictor(model=args.model, detector=args.detector, min_face=args.min_face,
                         margin=args.margin, threshold=args.threshold,
                         detector_model=args.detector_model, grayscale=not args.colour,
                         backend=args.backend)


def _describe_model(predictor):
    h, w, c = predictor.input_shape
    return (f"model {predictor.model_name}: {len(predictor.class_names)} classes, "
            f"input {h}x{w}x{c}, backend {predictor.backend}")


def _annotated_paths(images, out):
    """Where ``--out`` puts each annotated image: the file itself for one image given a name
    with an image suffix, else ``out/<stem>_annotated.png`` (numbered if stems repeat)."""
    if out is None:
        return [None] * len(images)
    if (len(images) == 1 and os.path.splitext(out)[1].lower() in _IMAGE_SUFFIXES
            and not os.path.isdir(out)):
        return [out]
    paths, seen = [], set()
    for image in images:
        stem = os.path.splitext(os.path.basename(image))[0]
        name, k = f"{stem}_annotated.png", 2
        while name in seen:
            name, k = f"{stem}_annotated_{k}.png", k + 1
        seen.add(name)
        paths.append(os.path.join(out, name))
    return paths


def _table(entry, class_names):
    lines = [f"{entry['path']}  {entry['width']}x{entry['height']}  "]
    faces = entry["faces"]
    if not faces:
        lines[0] += ("no face found (for an image that is already a face crop use --no-detect; "
                     "small faces: lower --min-face)")
        return "\n".join(lines)
    lines[0] += f"{len(faces)} face{'s' if len(faces) != 1 else ''}"
    widths = [max(len(n), 5) for n in class_names]
    header = (f"  {'#':>2}  {'box (x, y, w, h)':<22} {'score':>5}  {'label':<9} "
              + " ".join(f"{n:>{w}}" for n, w in zip(class_names, widths)))
    lines.append(header)
    for i, face in enumerate(faces, 1):
        box = ", ".join(str(v) for v in face["box"])
        score = "-" if face["score"] is None else f"{face['score']:.3f}"
        probs = " ".join(f"{face['probabilities'][n]:>{w}.3f}"
                         for n, w in zip(class_names, widths))
        lines.append(f"  {i:>2}  {box:<22} {score:>5}  {face['label']:<9} {probs}")
    return "\n".join(lines)


def _missing_image(path):
    if not os.path.exists(path):
        return f"{path}: file does not exist"
    return None


def _expand_folders(paths):
    """``(images, problems)``: each folder replaced by its image files (by suffix, sorted,
    sub-folders included); ``problems`` maps a folder without any to its message."""
    images, problems = [], {}
    for path in paths:
        if not os.path.isdir(path):
            images.append(path)
            continue
        found = sorted(os.path.join(root, name) for root, _, names in os.walk(path)
                       for name in names if os.path.splitext(name)[1].lower() in _IMAGE_SUFFIXES)
        if not found:
            problems[path] = (f"{path}: no image files in this folder (looked for "
                              f"{', '.join(_IMAGE_SUFFIXES)})")
        images += found
    return images, problems


_ROW_FIELDS = ("file", "face", "x", "y", "w", "h", "score", "label", "probability")


def _face_rows(entry):
    """One dict per face of an image entry; one with ``error`` for no face or a bad file."""
    if "error" in entry:
        return [{"file": entry["path"], "error": entry["error"]}]
    if not entry["faces"]:
        return [{"file": entry["path"], "error": "no face found"}]
    rows = []
    for i, face in enumerate(entry["faces"], 1):
        x, y, w, h = face["box"]
        rows.append({"file": entry["path"], "face": i, "x": x, "y": y, "w": w, "h": h,
                     "score": face["score"], "label": face["label"],
                     "probability": face["probability"], "probabilities": face["probabilities"]})
    return rows


class _RowWriter:
    """The ``--csv`` and ``--jsonl`` files, written as the images are processed."""

    def __init__(self, csv_path, jsonl_path, class_names):
        import csv

        self.files, self.csv, self.jsonl, self.names = [], None, None, class_names
        if csv_path:
            handle = _open_for_writing(csv_path)
            self.files.append(handle)
            self.csv = csv.writer(handle)
            self.csv.writerow(list(_ROW_FIELDS) + list(class_names) + ["error"])
        if jsonl_path:
            self.jsonl = _open_for_writing(jsonl_path)
            self.files.append(self.jsonl)

    def write(self, entry):
        for row in _face_rows(entry):
            if self.csv is not None:
                probs = row.get("probabilities", {})
                self.csv.writerow([row.get(k, "") for k in _ROW_FIELDS]
                                  + [probs.get(n, "") for n in self.names]
                                  + [row.get("error", "")])
            if self.jsonl is not None:
                self.jsonl.write(json.dumps(row) + "\n")

    def close(self):
        for handle in self.files:
            handle.close()


def _open_for_writing(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, "w", newline="", encoding="utf-8")


def _cmd_predict(args):
    from keras_fer.app.preprocessing import sample_image_path
    from keras_fer.zoo.loading import model_problem

    images = list(args.images)
    if not images:
        images = [sample_image_path()]
        print(f"no IMAGE given: using the bundled sample photo {images[0]}", file=sys.stderr)
    # Arguments are checked before the model loads (seconds of TensorFlow start-up), so a
    # typo is reported at once.
    problem = model_problem(args.model)
    if problem:
        _error("predict", problem)
        return 1
    images, empty = _expand_folders(images)
    missing = {path: _missing_image(path) for path in images}
    missing = {path: message for path, message in missing.items() if message}
    for message in list(empty.values()) + list(missing.values()):
        _error("predict", message)
    if len(missing) == len(images):
        return 1
    from tqdm.auto import tqdm

    try:
        predictor = _predictor(args)
    except _LOAD_ERRORS as err:
        _error("predict", err)
        return 1
    tables = not (args.json or args.csv or args.jsonl)
    if not args.json:
        print(_describe_model(predictor) + ("; no detection (each image is one face)"
                                            if args.no_detect else
                                            f"; detector {predictor.detector_name}"))
    out_paths = _annotated_paths(images, args.out)
    try:
        rows = _RowWriter(args.csv, args.jsonl, predictor.class_names)
    except OSError as err:
        _error("predict", err)
        return 1
    entries, failures = [], len(empty)
    try:
        for path, out_path in zip(tqdm(images, unit="image", leave=False, disable=None
                                       if len(images) > 1 else True), out_paths):
            entry = _predict_one(predictor, args, path, out_path, missing)
            failures += "error" in entry
            entries.append(entry)
            rows.write(entry)
            if tables and "error" not in entry:
                print(_table(entry, predictor.class_names))
                if out_path is not None:
                    print(f"  annotated image: {out_path}")
            elif "error" not in entry and not entry["faces"]:
                print(f"keras-fer predict: note: {path}: no face found", file=sys.stderr)
    finally:
        rows.close()
    if args.json:
        document = {"model": predictor.model_name, "backend": predictor.backend,
                    "detector": None if args.no_detect else predictor.detector_name,
                    "class_names": predictor.class_names, "images": entries}
        print(json.dumps(document, indent=2))
    elif not tables:
        faces = sum(len(e.get("faces", [])) for e in entries)
        print(f"{len(entries)} images: {faces} faces, "
              f"{sum(1 for e in entries if e.get('faces') == [])} without a face, "
              f"{failures} errors; rows in {', '.join(p for p in (args.csv, args.jsonl) if p)}")
    return 1 if failures else 0


def _predict_one(predictor, args, path, out_path, missing):
    """The JSON entry of one image (``{"path", "error"}`` for a bad one, reported here)."""
    if path in missing:
        return {"path": path, "error": missing[path]}
    try:
        image = predictor.load_image(path)
        faces = (predictor.predict_crops([image]) if args.no_detect
                 else predictor.predict(image))
        entry = {"path": path, "width": int(image.shape[1]), "height": int(image.shape[0]),
                 "faces": [f.to_dict() for f in faces]}
        if out_path is not None:
            from PIL import Image

            os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
            Image.fromarray(predictor.annotate(image, faces)).save(out_path)
            entry["annotated"] = out_path
        return entry
    except Exception as err:  # noqa: BLE001  one bad file must not lose the others
        message = str(err) if isinstance(err, (ValueError, OSError)) else \
            f"{type(err).__name__}: {err}"
        message = message if path in message else f"{path}: {message}"
        _error("predict", message)
        return {"path": path, "error": message}


def _default_video_out(source):
    stem = f"camera{source}" if str(source).isdigit() else \
        os.path.splitext(os.path.basename(str(source)))[0]
    return f"{stem}_annotated.mp4"


def _cmd_video(args):
    from keras_fer.app.video import parse_video_source, process_video
    from keras_fer.zoo.loading import model_problem

    try:  # the source and model are checked before the model loads
        parse_video_source(args.source)
    except ValueError as err:
        _error("video", err)
        return 1
    problem = model_problem(args.model)
    if problem:
        _error("video", problem)
        return 1
    try:
        predictor = _predictor(args)
        print(_describe_model(predictor) + f"; detector {predictor.detector_name}")
        out = args.out or _default_video_out(args.source)
        result = process_video(predictor, args.source, out=out, every=args.every,
                               max_frames=args.max_frames,
                               progress=False if args.no_progress else None,
                               smooth=args.smooth, track=not args.no_track)
    except _LOAD_ERRORS as err:
        _error("video", err)
        return 1
    if result.interrupted:
        print("stopped by Ctrl-C")
    print(f"frames processed: {result.frames} ({result.analysed} analysed, one in "
          f"{args.every})")
    print(f"faces found: {result.faces} (in the analysed frames)")
    print(f"speed: {result.fps:.1f} FPS (decode + detect + classify + track, "
          f"{result.seconds:.2f} s for {result.frames} frames); {result.total_fps:.1f} FPS "
          f"with drawing and encoding")
    print("ms per frame: " + ", ".join(f"{stage} {ms:.2f}"
                                       for stage, ms in result.stage_ms().items()))
    if result.out:
        print(f"annotated video: {result.out} ({result.codec})")
    return 0 if result.frames else 1
