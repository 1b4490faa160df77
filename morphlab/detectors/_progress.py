"""Whether long detector fits show tqdm progress bars.

Detectors have no UI parameter (their ``__init__`` takes hyper-parameters only), so the
caller says it around the fit: ``with fit_progress(False): det.fit(X, y)``
(``morphlab detect train --no-progress`` does). Bars are shown by default.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

_SHOW: contextvars.ContextVar[bool] = contextvars.ContextVar("morphlab_fit_progress", default=True)


@contextlib.contextmanager
def fit_progress(enabled: bool) -> Iterator[None]:
    """Show (``True``) or hide the progress bars of fits and feature extraction in the block."""
    token = _SHOW.set(bool(enabled))
    try:
        yield
    finally:
        _SHOW.reset(token)


def progress_enabled() -> bool:
    """Whether a fit running now should show its progress bar."""
    return _SHOW.get()
