"""This CPU's L2 and L3 sizes, read from Linux's sysfs: the product choice's cache bounds
(``_matrix.choice.cache_sizes``) and the CSR kernels' (set when the C++ backend loads). A module of
its own, importing nothing of fastlr's, so the backend loader can ask it without a cycle."""

from __future__ import annotations

import functools
import os

#: Where the system does not say (not Linux, an unexpected layout): small, so that size caps err
#: towards BLAS.
DEFAULT_SIZES = (512 * 1024, 16 * 1024 * 1024)


@functools.cache
def read_cache_sizes() -> tuple[int, int]:
    """(L2, L3) sizes in bytes of CPU 0's caches, or DEFAULT_SIZES where sysfs does not say; read once
    (the backend loader and the product choice both ask)."""
    sizes = {2: DEFAULT_SIZES[0], 3: DEFAULT_SIZES[1]}
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in os.listdir(root):
            if not entry.startswith("index"):
                continue
            with open(os.path.join(root, entry, "level")) as f:
                level = int(f.read())
            with open(os.path.join(root, entry, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(root, entry, "size")) as f:
                text = f.read().strip().upper()
            if level in sizes and kind in ("Unified", "Data") and text:
                unit = {"K": 1024, "M": 1024 * 1024}.get(text[-1], 1)
                sizes[level] = int(text.rstrip("KM")) * unit
    except (OSError, ValueError):
        pass  # the defaults
    return sizes[2], sizes[3]
