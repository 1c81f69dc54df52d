"""Warnings that point at the user's line, not at the skflow code that noticed the problem."""

from __future__ import annotations

import os
import sys
import warnings

_SKFLOW_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Packages whose frames sit between the user and skflow: scikit-learn's Pipeline, search and
# cross-validation, imbalanced-learn's pipelines. Their frames are skipped too, so a warning
# from a fit inside a Pipeline points at the user's ``pipe.fit(...)``.
_CALLING_PACKAGES = ("sklearn", "imblearn")


def _internal_prefixes() -> tuple[str, ...]:
    prefixes = [_SKFLOW_DIR]
    for name in _CALLING_PACKAGES:
        module = sys.modules.get(name)  # not imported: none of its frames can be on the stack
        if module is not None and getattr(module, "__file__", None):
            prefixes.append(os.path.dirname(os.path.abspath(module.__file__)) + os.sep)
    return tuple(prefixes)


def warn_at_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` located at the first frame outside skflow and the packages above.

    How deep that frame is depends on the entry point (``fit``, ``fit_predict``,
    ``fit_resample``, a Pipeline), so no fixed ``stacklevel`` points at the user's line.
    """
    prefixes = _internal_prefixes()
    frame = sys._getframe(1)
    level = 2  # stacklevel 2 names the caller of this function
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(prefixes):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
