"""Writes that a full disk or a kill cannot leave half-done: a temporary file in the same
folder, then ``os.replace`` (atomic on one file system), so readers see the previous file or
the new one, never a truncated one."""

import json
import os


def save_atomically(model, path):
    """``model.save(path)`` through a temporary ``.keras`` file beside it."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomically(path, value):
    """``json.dump(value)`` into ``path`` through a temporary file beside it."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(value, f, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
