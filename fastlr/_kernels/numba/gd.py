"""Numba gd kernels (filled in by their issue)."""

__all__ = []
