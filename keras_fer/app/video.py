"""The app on video: a file or a camera, frame by frame, with frame skipping, headless."""

import dataclasses
import os
import time
from typing import Optional

import numpy as np

from keras_fer.app.drawing import annotate
from keras_fer.validation import positive_int


#: The stages timed by ``process_video``, in the order they run on a frame.
STAGES = ("decode", "detect", "classify", "track", "draw", "write")


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What ``process_video`` did: ``frames`` read, ``analysed`` (detected and classified; the
    others had their boxes tracked), ``faces`` found in analysed frames, ``seconds`` spent
    decoding, detecting, classifying and tracking (drawing and encoding excluded), ``fps`` =
    frames / seconds, the written file ``out`` and its ``codec`` (``None`` when no output was
    asked for), and ``stage_seconds``: total seconds per stage of ``STAGES`` (``track``
    includes smoothing; ``draw`` and ``write`` are 0 without ``out``)."""

    frames: int
    analysed: int
    faces: int
    seconds: float
    fps: float
    out: Optional[str]
    codec: Optional[str]
    interrupted: bool = False
    stage_seconds: dict = dataclasses.field(default_factory=dict)

    @property
    def total_fps(self):
        """Frames per second of the whole run, drawing and encoding included."""
        total = sum(self.stage_seconds.values())
        return self.frames / total if total > 0 else 0.0

    def stage_ms(self):
        """Milliseconds per frame of each stage (``{stage: ms}``)."""
        return {k: 1000 * v / max(self.frames, 1) for k, v in self.stage_seconds.items()}


def parse_video_source(source):
    """A camera index (an int, or a string of digits) or a file path (must exist)."""
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return int(source)
    text = os.fsdecode(source)
    if text.isdigit():
        return int(text)
    if not os.path.exists(text):
        raise ValueError(f"video source {text!r}: no such file (give a video file or a camera "
                         f"index such as 0)")
    return text


def open_video_writer(path, fps, size, notify=print):
    """``(writer, path, codec)``: mp4v into ``path``; if this OpenCV build cannot encode mp4v,
    MJPG into ``path`` with an ``.avi`` extension, and ``notify`` says so. A ``.avi`` path gets
    MJPG directly. ``size`` is (width, height)."""
    import cv2

    path = os.fsdecode(path)
    tries = [("MJPG", path)] if path.lower().endswith(".avi") else [
        ("mp4v", path), ("MJPG", os.path.splitext(path)[0] + ".avi")]
    for codec, target in tries:
        folder = os.path.dirname(os.path.abspath(target))
        os.makedirs(folder, exist_ok=True)
        writer = cv2.VideoWriter(target, cv2.VideoWriter_fourcc(*codec), float(fps), size)
        if writer.isOpened():
            if target != path:
                notify(f"note: the mp4v codec is not available in this OpenCV build; writing "
                       f"MJPG to {target} instead")
            return writer, target, codec
        writer.release()
        if os.path.isfile(target) and os.path.getsize(target) == 0:
            os.remove(target)  # a failed open can leave an empty file behind
    raise ValueError(f"out: OpenCV cannot write a video to {path} (tried "
                     f"{', '.join(c for c, _ in tries)})")


def process_video(predictor, source, out=None, every=1, max_frames=None, progress=None,
                  notify=print, smooth=5, track=True):
    """Runs ``predictor`` over a video file or camera and writes the annotated frames.

    ``source``: a file path or camera index. ``out``: the annotated video to write (``None``:
    none). ``every``: detect and classify one frame in ``every``; on the frames in between
    each face's box is tracked (``track=True``, ``keras_fer.app.tracking``) or held still
    (``track=False``), with the last labels. ``smooth``: the label of a face is the argmax of
    its probabilities averaged over its last ``smooth`` analysed frames (1: no smoothing).
    ``max_frames``: stop after that many frames (a camera otherwise runs until Ctrl-C, which
    ends the run cleanly). ``progress``: tqdm bar when the frame count is known (``None``:
    only on a terminal). Headless: nothing is shown on screen. Returns a ``VideoResult``.
    """
    import cv2
    from tqdm.auto import tqdm

    from keras_fer.app.tracking import FaceTracks

    every = positive_int(every, "every")
    max_frames = positive_int(max_frames, "max_frames", allow_none=True)
    tracks = FaceTracks(window=positive_int(smooth, "smooth"))
    source = parse_video_source(source)
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise ValueError(f"video source {source!r}: OpenCV cannot open it (not a readable video "
                         f"file or camera)")
    predictor.warm_up()
    fps_in = capture.get(cv2.CAP_PROP_FPS)
    fps_in = fps_in if fps_in and 0 < fps_in < 1000 else 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if max_frames is not None and total > 0:
        total = min(total, int(max_frames))
    bar = tqdm(total=total if total > 0 else None, unit="frame", leave=False,
               disable=(None if progress is None else not progress) if total > 0 else True)
    writer, out_path, codec = None, None, None
    frames = analysed = faces = 0
    interrupted, shown = False, []
    stages = dict.fromkeys(STAGES, 0.0)
    clock = time.perf_counter
    try:
        while max_frames is None or frames < max_frames:
            start = clock()
            ok, frame = capture.read()
            if not ok:
                stages["decode"] += clock() - start
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            now = clock()
            stages["decode"] += now - start
            if frames % every == 0:
                kept = predictor.detect(rgb)
                start, now = now, clock()
                stages["detect"] += now - start
                found = predictor.classify(rgb, kept)
                start, now = now, clock()
                stages["classify"] += now - start
                shown = tracks.update(found, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
                analysed += 1
                faces += len(found)
            elif track and tracks.tracks:
                shown = tracks.follow(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
            start, now = now, clock()
            stages["track"] += now - start
            frames += 1
            if out is not None:
                drawn = cv2.cvtColor(annotate(rgb, shown), cv2.COLOR_RGB2BGR)
                start, now = now, clock()
                stages["draw"] += now - start
                if writer is None:
                    writer, out_path, codec = open_video_writer(
                        out, fps_in, (rgb.shape[1], rgb.shape[0]), notify)
                writer.write(drawn)
                stages["write"] += clock() - now
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        capture.release()
        if writer is not None:
            writer.release()
    seconds = sum(stages[k] for k in ("decode", "detect", "classify", "track"))
    return VideoResult(frames=frames, analysed=analysed, faces=faces, seconds=seconds,
                       fps=frames / seconds if seconds > 0 else 0.0, out=out_path, codec=codec,
                       interrupted=interrupted, stage_seconds=stages)
