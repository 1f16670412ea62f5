"""Progress bars shared by the library: shown when stderr is a terminal, unless ``progress`` says otherwise."""
from __future__ import annotations

import sys


def show_progress(progress=None) -> bool:
    """``progress`` as given (True/False), or, when None, whether stderr is a terminal."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def bar(iterable=None, *, total=None, desc: str | None = None, progress=None, **kwargs):
    """A ``tqdm`` bar over ``iterable`` (or of ``total`` steps), disabled when :func:`show_progress` is False."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not show_progress(progress), **kwargs)
