"""Reading matrices, progress bars and plots for the command line.

Every user mistake (missing file, unreadable or unsupported format, wrong
shape) becomes a ``UserError`` with one line that names the file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

__all__ = ["MATRIX_FORMATS", "VIDEO_SUFFIXES", "UserError", "progress", "read_matrix", "read_video", "save_plot"]

MATRIX_FORMATS = (".npy", ".npz", ".mtx", ".csv")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")


class UserError(Exception):
    """A mistake in the command's arguments or data: reported in one line, no traceback."""


def _existing_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a matrix file ({', '.join(MATRIX_FORMATS)})")
    return path


def read_matrix(path, *, mmap: bool = True):
    """A 2-D real matrix from a .npy (memory-mapped), .npz, .mtx (sparse) or .csv file.

    .npy, .npz and .mtx go through ``fastlr.datasets.load_matrix``; .csv is read here.

    Raises
    ------
    UserError
        If the file is missing, unreadable, of another format, or not a 2-D real matrix.
    """
    from .datasets import MATRIX_SUFFIXES, load_matrix

    path = _existing_file(path)
    suffix = path.suffix.lower()
    if suffix in MATRIX_SUFFIXES:
        try:
            return load_matrix(path, mmap=mmap)
        except ValueError as exc:
            raise UserError(str(exc).removeprefix("path: ")) from None
    if suffix != ".csv":
        raise UserError(f"{path}: unsupported format {suffix or '(no extension)'!r}; use {', '.join(MATRIX_FORMATS)}")
    try:
        A = np.loadtxt(path, delimiter=",", ndmin=2)
    except (ValueError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: cannot read ({reason})") from None
    if min(A.shape) == 0:
        raise UserError(f"{path}: the matrix is empty (shape {A.shape})")
    return A


def read_video(path) -> list:
    """The frames of a video (imageio) as matrices with values in [0, 1], in the paper's layout.

    Each H x W x C frame becomes the (C W) x H matrix of ``fastlr.datasets.frame_to_matrix``.
    """
    from .datasets import frame_to_matrix

    path = _existing_file(path)
    try:
        import imageio.v3 as iio
    except ImportError:
        raise UserError(f"{path}: reading a video needs imageio: pip install imageio imageio-ffmpeg") from None
    try:
        frames = [frame_to_matrix(np.asarray(frame, dtype=np.float64) / 255.0) for frame in iio.imiter(path)]
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: cannot read as a video ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not frames:
        raise UserError(f"{path}: the video has no frames")
    return frames


def progress(iterable=None, *, total=None, desc=None, quiet=False):
    """A tqdm bar on stderr that appears only when the work takes more than a second."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=quiet, delay=1.0, file=sys.stderr, leave=False)


def save_plot(path, draw) -> None:
    """Call ``draw(ax)`` on a new figure and save it to ``path`` (format from the extension)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    try:
        draw(ax)
        fig.savefig(path)
    except ValueError as exc:  # unknown image format
        raise UserError(f"--plot {path}: {exc}") from None
    finally:
        plt.close(fig)
