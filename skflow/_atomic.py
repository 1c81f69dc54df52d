"""``fit`` as a transaction: an error or an interrupt leaves the previous fitted state intact."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

Method = TypeVar("Method", bound=Callable)


def atomic_fit(method: Method) -> Method:
    """Decorate an estimator's ``fit`` so that it changes the estimator all at once or not at all.

    ``fit`` sets its attributes one after another (the validated feature names first, the
    preprocessing, then the flow after minutes of training, the threshold last), so an
    exception or a ``KeyboardInterrupt`` between two of them would leave half of a new model
    beside half of the old one: a detector whose new standardisation meets its old flow flags
    every row. On any exception the estimator's attributes are put back as they were before
    the call. That is enough because no fit changes an existing fitted object in place (a warm
    start trains a copy of the flow and its history).
    """

    @functools.wraps(method)
    def transactional_fit(self, *args, **kwargs):
        before = dict(self.__dict__)
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    return transactional_fit
