"""Numba products kernels (filled in by their issue)."""

__all__ = []
