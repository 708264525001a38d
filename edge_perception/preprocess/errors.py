"""The one error type of the preprocessing package."""

from __future__ import annotations

__all__ = ["ImageFormatError"]


class ImageFormatError(ValueError):
    """An image buffer or compressed image that cannot be read as its header claims."""
