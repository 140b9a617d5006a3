"""Matrix data: deterministic generators of matrix distributions, and loaders.

Generators (seeded, no network) imitate the three data families of Indyk,
Vakilian and Yuan (NeurIPS 2019) plus a plain low-rank model:

* :func:`video` - frames of a moving scene over a static background, each
  H x W x 3 frame stacked as the 3W x H matrix ``[R^T; G^T; B^T]``;
* :func:`hyperspectral` - band images of hyperspectral scenes (a few
  materials with smooth spectra mixed over the image);
* :func:`text` - sparse term-document count matrices with Zipfian word
  frequencies and a few topics each;
* :func:`lowrank` - low rank plus noise with a chosen spectrum and a column
  space shared (up to a drift) across the matrices.

Matrices from one call share structure, which is what a learned sketch
exploits; train on some and test on the others.

Loaders: :func:`load_matrix` reads one .npy / .npz (dense or scipy.sparse) /
.mtx file, :func:`load_folder` a folder of them or of image frames. :func:`normalize` scales a
matrix to sigma_1 = 1 as the paper does.

The code lives in ``fastlr._data`` (generators, files, scaling); this module is its public face.
"""

from __future__ import annotations

from ._data.files import (  # noqa: F401 (for the CLI and load_sketch)
    IMAGE_SUFFIXES,
    MATRIX_SUFFIXES,
    load_folder,
    load_matrix,
    read_npz_arrays,
)
from ._data.generators import frame_to_matrix, hyperspectral, lowrank, text, video
from ._data.scaling import normalize, spectral_norm

__all__ = [
    "frame_to_matrix",
    "hyperspectral",
    "load_folder",
    "load_matrix",
    "lowrank",
    "normalize",
    "spectral_norm",
    "text",
    "video",
]
