"""Fast CPU inference for keras-fer models with TensorFlow Lite (LiteRT).

Why: the app classifies a handful of 48x48 faces per image. A TensorFlow graph call of the
Keras model costs about 4 to 10 ms per call on a CPU, almost all of it per-call overhead of the
TensorFlow runtime rather than arithmetic; the same network as a TFLite flatbuffer run by the
TFLite interpreter (XNNPACK kernels) costs about 0.4 ms per face (a width-2 mini-Xception,
float32). The ``fer`` package gets its speed the same way.

* ``to_tflite(model)``: the flatbuffer of ``model(x, training=False)`` for float32 inputs
  ``(batch, H, W, C)`` in [0, 255] (keras-fer models normalise inside), built-in TFLite ops only
  (so it runs on the small ``ai-edge-litert`` interpreter as well as ``tf.lite``), float32
  weights by default. Conversion is checked: the TFLite outputs on a seeded probe batch must
  equal the Keras outputs (to 1e-4 of their scale), so a conversion that silently changes the
  computation is an error rather than a wrong answer.
* ``TFLiteRunner(content_or_path)``: calls the interpreter on batches of any size.
* ``cached_tflite(model_path)``: converting costs seconds, so the flatbuffer of a ``.keras`` file
  is kept at ``$KERAS_FER_HOME/tflite/<sha256 of the .keras file>.tflite`` (``KERAS_FER_HOME``
  defaults to ``~/.keras_fer``, as for the zoo) and reused. The key is the file's content, so
  an edited or retrained file is converted again and a renamed copy is not.

Interpreter: ``ai_edge_litert.interpreter.Interpreter`` (``pip install ai-edge-litert``, the
successor TensorFlow points to) when it is installed, else ``tf.lite.Interpreter``, whose
deprecation warning is silenced here (it is the same runtime; the warning only asks to move).
Either prints one line, ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``, on the
first interpreter of a process; it comes from C++ and cannot be turned off from Python.
"""

import contextlib
import json
import os
import re
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from keras_fer.paths import home
from keras_fer.validation import positive_int

#: ``quantize`` values of ``to_tflite``: ``None`` (float32 weights) or ``"dynamic"``
#: (dynamic-range quantisation: int8 weights, float activations).
QUANTIZE_MODES = (None, "dynamic")

# Probe check of a float conversion: |tflite - keras| <= _VERIFY_TOLERANCE * max(1, max|keras|).
# Float32 reorderings of the sums (XNNPACK vs TensorFlow kernels) stay near 1e-6 of the scale;
# a wrong op (training-mode batch norm, a dropped layer, swapped axes) is off by O(1).
_VERIFY_TOLERANCE = 1e-4


class TFLiteConversionError(ValueError):
    """The model cannot be converted to TFLite, or its TFLite outputs differ from Keras'.

    A ``ValueError``: the model is the bad argument (for this backend), and callers such as
    the command line report ``ValueError`` in one line."""


def check_quantize(quantize):
    """Raises ``ValueError`` unless ``quantize`` is one of ``QUANTIZE_MODES``."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")


def _image_input_shape(model):
    """``(H, W, C)`` of a single-input model with a fixed image size."""
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise ValueError(f"model must have exactly one input, got {len(inputs)}")
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or None in shape:
        raise ValueError(f"model input shape must be (height, width, channels) with fixed "
                         f"sizes, got {shape}")
    return tuple(int(v) for v in shape)


def _first_line(err, limit=300):
    text = str(err).strip().splitlines()
    line = f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _conversion_problem(err):
    """One line saying why the converter failed: the TensorFlow ops that have no TFLite
    built-in kernel when that is the reason (the usual one), else the error's first line."""
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op",
                                str(err))))
    if ops:
        return f"ops without a TFLite built-in kernel: {', '.join(ops)}"
    return _first_line(err)


@contextlib.contextmanager
def _stderr_to(path):
    """Points file descriptor 2 at ``path`` (the converter's MLIR diagnostics are written there
    from C++, a screenful per failing op, where Python's ``sys.stderr`` cannot catch them)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (a daemon): nothing to hide
        yield
        return
    try:
        with open(path, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


class _NotRunnable(TFLiteConversionError):
    """Converted, but the interpreter cannot allocate or run it."""


def to_tflite(model, batch_size=None, quantize=None, verify=True, quiet=True):
    """The TFLite flatbuffer (``bytes``) of a single-input Keras image model.

    Args:
        model: a ``keras.Model`` taking ``(batch, H, W, C)`` pixels (fixed H, W, C).
        batch_size: ``None`` (default): a dynamic batch dimension, resized per call by
            ``TFLiteRunner``; an integer: a fixed batch (``TFLiteRunner`` then runs larger
            batches in chunks, padding the last). ``convert`` picks for you.
        quantize: ``None`` (default, float32, same outputs as Keras to float32 rounding) or
            ``"dynamic"`` (dynamic-range quantisation: weights stored as int8, about 4x
            smaller; outputs change slightly, see docs/app.md for the measured effect).
        verify: run the Keras model and the converted model on a seeded probe batch and raise
            ``TFLiteConversionError`` if they disagree (float conversions only: a quantised
            model differs by design). The converted model is always loaded once, so a model
            the interpreter cannot allocate is an error here, not at the first face.
        quiet: hide the converter's C++ diagnostics while it runs (process-wide: file
            descriptor 2 is redirected for the seconds of the conversion); on failure they are
            kept in the exception's ``converter_log`` attribute.

    Raises ``TFLiteConversionError`` when the converter fails (e.g. an op with no TFLite
    built-in kernel, such as ``tf.Roll`` in Swin's shifted windows) or the check fails;
    ``ValueError`` for bad arguments.
    """
    import tensorflow as tf

    batch_size = positive_int(batch_size, "batch_size", allow_none=True)
    check_quantize(quantize)
    shape = _image_input_shape(model)
    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec((batch_size,) + shape, tf.float32)])
    with tempfile.TemporaryDirectory(prefix="keras_fer_tflite_") as scratch:
        log_path = os.path.join(scratch, "converter.log")
        try:
            with _stderr_to(log_path) if quiet else contextlib.nullcontext():
                # The tf.function is the trackable object: passing the Keras 3 model there
                # instead converts without an error but yields NaN outputs (measured, TF
                # 2.21): the variables are then not frozen from the traced captures.
                converter = tf.lite.TFLiteConverter.from_concrete_functions(
                    [fn.get_concrete_function()], fn)
                # Built-in ops only: a model needing TensorFlow (Flex) kernels would not run
                # on the ai-edge-litert interpreter, and would lose most of the speed.
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
                if quantize == "dynamic":
                    converter.optimizations = [tf.lite.Optimize.DEFAULT]
                content = converter.convert()
        except Exception as err:  # the converter raises many types (ConverterError, ...)
            error = TFLiteConversionError(f"TFLite conversion failed: "
                                          f"{_conversion_problem(err)}")
            error.converter_log = (open(log_path, errors="replace").read()
                                   if os.path.isfile(log_path) else "")
            raise error from err
    try:
        runner = TFLiteRunner(content)
    except ValueError as err:
        raise _NotRunnable(f"the converted TFLite model cannot be loaded: {err}") from err
    if verify and quantize is None:
        _verify(model, runner, shape, batch_size or 2)
    return content


def convert(model, quantize=None):
    """``to_tflite`` with a dynamic batch, or with a fixed batch of 1 when the interpreter
    cannot allocate the dynamic-batch model (CrossViT's reshapes: "BytesRequired number of
    elements overflowed"); ``TFLiteRunner`` then runs one face per invoke, as ``fer`` does."""
    try:
        return to_tflite(model, quantize=quantize)
    except _NotRunnable:
        return to_tflite(model, batch_size=1, quantize=quantize)


def _verify(model, runner, shape, batch):
    probe = np.random.default_rng(0).uniform(0, 255, (batch,) + shape).astype(np.float32)
    expected = np.asarray(model(probe, training=False), dtype=np.float64)
    try:
        got = np.asarray(runner(probe), dtype=np.float64)
    except (ValueError, RuntimeError) as err:
        raise _NotRunnable(f"the converted TFLite model does not run: {_first_line(err)}"
                           ) from err
    if got.shape != expected.shape:
        raise TFLiteConversionError(f"TFLite model outputs shape {got.shape}, Keras "
                                    f"{expected.shape}")
    error = float(np.abs(got - expected).max())
    scale = max(1.0, float(np.abs(expected).max()))
    if not error <= _VERIFY_TOLERANCE * scale:  # also catches NaN
        raise TFLiteConversionError(
            f"TFLite outputs differ from Keras by up to {error:.3g} (output scale {scale:.3g}) "
            f"on a probe batch; the converted model does not compute the same function")


def interpreter_class():
    """``(Interpreter class, name)``: ``ai_edge_litert``'s when installed, else ``tf.lite``'s."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter, "tf.lite"


def _make_interpreter(content_or_path, num_threads):
    cls, name = interpreter_class()
    kwargs = {"num_threads": num_threads}
    if isinstance(content_or_path, (bytes, bytearray, memoryview)):
        kwargs["model_content"] = bytes(content_or_path)
    else:
        path = os.fspath(content_or_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"tflite model: file not found: {path}")
        kwargs["model_path"] = path
    with warnings.catch_warnings():
        # tf.lite.Interpreter's "deprecated, use ai_edge_litert" warning, on every creation.
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        interpreter = cls(**kwargs)
    return interpreter, name


class TFLiteRunner:
    """Runs a TFLite image model on NumPy batches: ``runner(batch) -> outputs``.

    ``content_or_path``: the flatbuffer (``bytes``, e.g. from ``to_tflite``) or a ``.tflite``
    path. ``num_threads``: CPU threads of the interpreter (``None``: its default). On a loaded
    2-core machine one thread was as fast as two for 1 to 8 faces (0.4 ms per 48x48 face for
    the width-2 mini-Xception); more threads pay off for larger models and batches.

    Batches of any size: for a model converted with a dynamic batch (the default), the
    interpreter's input is resized when the batch size changes (about 0.05 ms, less than one
    face; measured faster than looping a batch-1 model for 2 to 8 faces). A fixed-batch model
    is run in chunks of its batch size, the last one padded. Calls are serialised by a lock:
    a TFLite interpreter is not thread-safe.
    """

    def __init__(self, content_or_path, num_threads=None):
        num_threads = positive_int(num_threads, "num_threads", allow_none=True)
        self.num_threads = num_threads
        try:
            self.interpreter, self.interpreter_name = _make_interpreter(content_or_path,
                                                                        num_threads)
            self.interpreter.allocate_tensors()
        except FileNotFoundError:
            raise
        except Exception as err:  # the interpreter raises ValueError/RuntimeError on bad data
            raise ValueError(f"tflite model: not a loadable TFLite model ({_first_line(err)})"
                             ) from err
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"tflite model must have one input and one output, got "
                             f"{len(inputs)} and {len(outputs)}")
        self._input, self._output = inputs[0], outputs[0]
        signature = [int(v) for v in self._input.get("shape_signature", self._input["shape"])]
        if len(signature) != 4:
            raise ValueError(f"tflite model input must be (batch, height, width, channels), "
                             f"got shape {signature}")
        #: ``(H, W, C)`` of one image.
        self.input_shape = tuple(signature[1:])
        #: The model's fixed batch size, or ``None`` when the batch dimension is dynamic.
        self.fixed_batch = None if signature[0] == -1 else signature[0]
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()

    def _invoke(self, batch):
        if len(batch) != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self.interpreter.allocate_tensors()
            self._batch = len(batch)
        self.interpreter.set_tensor(self._input["index"], batch)
        self.interpreter.invoke()
        # get_tensor returns a copy; the next invoke cannot change what the caller holds.
        return self.interpreter.get_tensor(self._output["index"])

    def __call__(self, batch):
        """Outputs (``(N, ...)`` float32) of ``batch``: float32-convertible ``(N, H, W, C)``
        pixels in the range the model was trained on ([0, 255] for keras-fer models)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != self.input_shape:
            raise ValueError(f"batch must have shape (N,) + {self.input_shape}, got "
                             f"{batch.shape}")
        out_shape = tuple(int(v) for v in self._output["shape"][1:])
        if len(batch) == 0:
            return np.zeros((0,) + out_shape, np.float32)
        with self._lock:
            if self.fixed_batch is None:
                return self._invoke(batch)
            size, parts = self.fixed_batch, []
            for start in range(0, len(batch), size):
                chunk = batch[start:start + size]
                if len(chunk) < size:
                    chunk = np.concatenate([chunk, np.zeros((size - len(chunk),)
                                                            + self.input_shape, np.float32)])
                parts.append(self._invoke(chunk))
            return np.concatenate(parts)[:len(batch)]


def cache_dir():
    """The folder of ``cached_tflite``'s files: ``$KERAS_FER_HOME/tflite`` (read on every
    call; ``keras_fer.paths.home``)."""
    return home() / "tflite"


def cache_path(sha256, quantize=None):
    """Where ``cached_tflite`` keeps the flatbuffer of the ``.keras`` file with this digest:
    ``cache_dir() / "<sha256>[.dynamic].tflite"``."""
    check_quantize(quantize)
    suffix = "" if quantize is None else f".{quantize}"
    return cache_dir() / f"{sha256}{suffix}.tflite"


def cached_tflite(model_path=None, model=None, quantize=None, sha256=None):
    """Path (``str``) of the TFLite file of a ``.keras`` model, converted once and cached.

    Args:
        model_path: the ``.keras`` file; its sha256 is the cache key.
        model: the same model already loaded (saves loading it again for a conversion).
        quantize: as in ``to_tflite``; each mode has its own cache file.
        sha256: the file's digest when already known (the zoo's verified digest); with
            ``model`` given, ``model_path`` may then be ``None``.

    The conversion is ``convert``'s (dynamic batch, else batch 1). The file is written to a
    temporary name in the cache folder and renamed into place, so a concurrent or
    interrupted conversion never leaves a partial file under the final name. A model that does
    not convert is remembered too (``<sha256>[.dynamic].failed.json``, with the TensorFlow
    version): later calls raise the same ``TFLiteConversionError`` at once instead of spending
    seconds on a conversion known to fail; a new TensorFlow version tries again, and so does
    deleting that file.
    """
    import tensorflow as tf

    from keras_fer.zoo.store import sha256 as file_sha256

    if sha256 is None or model is None:
        if model_path is None:
            raise ValueError("model_path is required unless both model and sha256 are given")
        model_path = os.fsdecode(model_path)
        if not os.path.isfile(model_path):
            raise ValueError(f"model_path: file not found: {model_path}")
    digest = sha256 or file_sha256(model_path)
    target = cache_path(digest, quantize)
    if target.is_file():
        return str(target)
    failed = target.with_name(target.name[:-len(".tflite")] + ".failed.json")
    try:
        record = json.loads(failed.read_text())
    except (OSError, ValueError):
        record = None
    if isinstance(record, dict) and record.get("tensorflow") == tf.__version__:
        raise TFLiteConversionError(f"{record.get('error')} (remembered in {failed}; delete "
                                    f"it to try again)")
    if model is None:
        from keras_fer.zoo.loading import load_model

        model = load_model(model_path)
    try:
        content = convert(model, quantize=quantize)
    except TFLiteConversionError as err:
        _write_atomically(failed, json.dumps({"tensorflow": tf.__version__,
                                              "error": str(err)}).encode())
        raise
    _write_atomically(target, content)
    return str(target)


def _write_atomically(target, content):
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".",
                                         suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(content)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a cache is ordinary data
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
