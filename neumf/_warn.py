"""Warnings that name the user's line: the first frame outside the package
(the call of ``fit`` or ``load_dataset`` in the user's code), not the library
line that noticed the problem."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Type

__all__ = ["warn"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _hidden(filename: str) -> bool:
    # the frames warnings.warn itself skips (CPython's import machinery)
    return "importlib" in filename and "_bootstrap" in filename


def warn(message: str, category: Type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the nearest caller
    outside neumf (filters and once-per-location registries apply there)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _hidden(filename):
            level += 1
            if not os.path.abspath(filename).startswith(_PACKAGE):
                break
        frame = frame.f_back
    warnings.warn(message, category, stacklevel=level)
