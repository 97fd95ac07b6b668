"""bookrec: the offline toolkit of a book recommender.

The Python API is `bookrec.open()` (see `bookrec.api`), its settings `bookrec.Settings`, its
results the dataclasses of `bookrec.results` and its errors those of `bookrec.errors`; every
other module is internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Bookrec", "Settings", "__version__", "open"]

if TYPE_CHECKING:
    from bookrec.api import Bookrec, open
    from bookrec.settings import Settings


def __getattr__(name: str) -> Any:
    # Imported on first use: `bookrec --help` must not pay for pydantic and numpy.
    if name in ("open", "Bookrec"):
        from bookrec import api

        return getattr(api, name)
    if name == "Settings":
        from bookrec.settings import Settings

        return Settings
    raise AttributeError(f"module 'bookrec' has no attribute {name!r}")
