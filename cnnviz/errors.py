"""Errors shared across the library that carry a meaning of their own.

``UnknownName`` is what the library raises when a name the user typed does not exist: an architecture, a
variant option, a layer, a model, an ImageNet entry. It is a ``KeyError`` (callers that catch ``KeyError``
keep working), but unlike a bare one its message is a sentence naming what exists. The command line and the
pages show it as one clear line; a *bare* ``KeyError`` is a bug (a dict read of a missing key) and the command
line prints its traceback instead of a cryptic "error: name".
"""

from __future__ import annotations


class UnknownName(KeyError):
    """A name that does not exist; ``str()`` is the message itself (``KeyError`` would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
