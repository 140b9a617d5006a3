"""NumPy reference gd kernels (filled in by their issue)."""

__all__ = []
