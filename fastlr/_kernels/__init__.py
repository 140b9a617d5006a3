"""Kernel implementations in pure Python backends (Numba JIT and the NumPy reference).

Both mirror the compiled ``fastlr._core`` kernel names 1:1.
"""
