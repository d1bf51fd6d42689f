"""Keeps TensorFlow's start-up log lines out of the ``keras-fer`` commands' output.

TensorFlow's C++ side prints lines such as ``cuInit ... UNKNOWN ERROR (303)`` (on a machine
without a GPU), ``cudart_stub.cc ... Could not find cuda drivers`` and the oneDNN banner.
``TF_CPP_MIN_LOG_LEVEL`` filters what comes once TensorFlow has set up its logging, but the
lines of ``import tensorflow`` itself come before that (absl writes them to stderr "before
absl::InitializeLog() is called") and no setting reaches them. So the command line

- sets ``TF_CPP_MIN_LOG_LEVEL=3`` when the user has not set it (``keras_fer`` itself defaults
  to 2 for library users; a user's own value is always kept: ``TF_CPP_MIN_LOG_LEVEL=0
  keras-fer ...`` shows everything);
- runs the first ``import tensorflow`` with file descriptor 2 sent to a temporary file, then
  writes back every line except the C++ log lines below that level and absl's notice about
  them. Python errors and warnings raised during the import are written back unchanged.
  ``keras-fer predict`` / ``video`` load their model the same way (TFLite announces its CPU
  delegate with an ``INFO:`` line).

Only ``keras_fer.cli.main`` installs this; importing keras-fer as a library changes nothing.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

# glog/absl format: severity letter, date, time, thread id, file:line]
_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\s\]]+:\d+\] ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_NOTICE = ("WARNING: All log messages before absl::InitializeLog() is called are written "
                "to STDERR")
# Continuation lines of dropped multi-line messages (cpu_feature_guard's).
_CONTINUATIONS = ("To enable the following instructions",)
# TFLite's own logger (not absl's format), at info level.
_TFLITE_INFO = ("INFO: Created TensorFlow Lite",)


def log_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_log(text, level):
    """``text`` without the C++ log lines of a severity below ``level`` (0 info, 1 warning,
    2 error, 3 fatal) and absl's pre-initialisation notice (when ``level`` > 0)."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match:
            dropping = _SEVERITY[match.group(1)] < level
            if dropping:
                continue
        elif level > 0 and (line.strip() == _ABSL_NOTICE or line.startswith(_TFLITE_INFO)):
            continue
        elif dropping and line.startswith(_CONTINUATIONS):
            continue
        else:
            dropping = False
        kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def filtered_stderr(level):
    """Everything written to file descriptor 2 inside the block is held back, then written
    to it without the lines ``filter_log`` drops."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = filter_log(capture.read().decode("utf-8", "replace"), level)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # The module keeps its real loader; only this one execution is wrapped.
        module.__loader__ = module.__spec__.loader = self._loader
        with filtered_stderr(log_level()):
            self._loader.exec_module(module)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # once: the spec below comes from the other finders
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install():
    """For the command line: the log level (unless the user set one) and the quiet first
    import of TensorFlow. Does nothing to a TensorFlow already imported."""
    import keras_fer

    if not getattr(keras_fer, "_TF_LOG_LEVEL_FROM_USER", True):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "tensorflow" not in sys.modules and \
            not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
