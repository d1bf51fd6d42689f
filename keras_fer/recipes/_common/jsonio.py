"""JSON the recipes write and read back: NumPy values become numbers and lists."""

import json
import os


def json_ready(value):
    """``value`` with NumPy scalars and arrays turned into numbers and lists (anything else
    JSON does not know into its ``str``)."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                 else str(o)))


def write_json(path, value):
    """``value`` as indented JSON (NumPy scalars and arrays become numbers and lists),
    written atomically (a killed run never leaves half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(json_ready(value), f, indent=1)
    os.replace(tmp, path)
    return path


def read_json(path):
    with open(path) as f:
        return json.load(f)
