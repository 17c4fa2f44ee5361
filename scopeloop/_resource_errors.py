"""The errors of streams and other resources (AnyIO's names).

Their own module, below everything that raises them: memory streams, TCP streams,
the stream ABCs, fd waits and the synchronisation primitives all use them, and
none of those should have to import another to get its exceptions.
"""

from __future__ import annotations

__all__ = ("EndOfStream", "ClosedResourceError", "BrokenResourceError", "WouldBlock")


class EndOfStream(Exception):
    """Every send stream is closed and the buffer is empty: nothing more will arrive."""


class ClosedResourceError(Exception):
    """The stream handle (or resource) was closed by this side."""


class BrokenResourceError(Exception):
    """The other side is gone: every receive stream has been closed."""


class WouldBlock(Exception):
    """A ``*_nowait()`` operation could not complete without waiting."""
