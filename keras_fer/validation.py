"""Argument checks shared by the package: one wording for one mistake.

Every check raises ``ValueError`` whose message names the argument and shows the value, e.g.
``batch_size must be an integer >= 1, got 0``. Nothing heavy is imported here (layers,
readers and the command line all use it).
"""

import numbers
import os


def check_int(value, name, minimum=1, allow_none=False):
    """``value`` as an ``int`` >= ``minimum`` (a Python or NumPy integer, never a bool), or
    ``None`` when ``allow_none`` and it is ``None``; otherwise a ``ValueError`` naming
    ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}"
                         f"{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def positive_int(value, name, allow_none=False):
    """``check_int(value, name, 1, allow_none)``: an integer >= 1."""
    return check_int(value, name, 1, allow_none)


def is_path(value):
    """Whether ``value`` names a file: a ``str``, ``bytes`` or ``os.PathLike``."""
    return isinstance(value, (str, bytes, os.PathLike))
