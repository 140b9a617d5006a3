"""Reading matrices, progress bars and plots for the command line.

Every user mistake (missing file, unreadable or unsupported format, wrong
shape) becomes a ``UserError`` with one line that names the file.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = [
    "MATRIX_FORMATS",
    "VIDEO_SUFFIXES",
    "UserError",
    "atomic_output",
    "npz_path",
    "plot_path",
    "progress",
    "read_matrix",
    "read_video",
    "save_plot",
]

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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path):
    """A binary file to write ``path`` through: a temporary file in the same folder, moved into
    place by ``os.replace`` only when the ``with`` block ends normally.

    On any exception (KeyboardInterrupt included) the temporary file is removed and a
    previous ``path`` is left as it was: an output is either the old file or the complete new one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a new file's usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def npz_path(path) -> str:
    """The file ``np.savez(path, ...)`` writes: ``path`` with ``.npz`` appended unless it ends so."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def plot_path(path) -> tuple[str, str]:
    """(file, format) matplotlib's ``savefig(path)`` writes: the format from the extension,
    else PNG with ``.png`` appended (as matplotlib does)."""
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1][1:].lower()
    if not fmt:
        return path.rstrip(".") + ".png", "png"
    return path, fmt


def save_plot(path, draw) -> str:
    """Call ``draw(ax)`` on a new figure and save it (atomically) to ``path``; returns the file written.

    The format comes from the extension (none: PNG, and ``.png`` is appended, as matplotlib does).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install matplotlib") from None
    target, fmt = plot_path(path)
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    try:
        if fmt not in fig.canvas.get_supported_filetypes():
            supported = ", ".join(sorted(fig.canvas.get_supported_filetypes()))
            raise UserError(f"--plot {path}: unknown image format {fmt!r} (supported: {supported})")
        draw(ax)
        with atomic_output(target) as f:
            fig.savefig(f, format=fmt)
    except ValueError as exc:
        raise UserError(f"--plot {path}: {exc}") from None
    finally:
        plt.close(fig)
    return target
