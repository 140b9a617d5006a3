"""The sketch file: the .npz archive ``S.save(path)`` writes and ``load_sketch(path)`` reads.

No pickle either way: every entry is a plain array (strings as NumPy unicode
scalars, a LearnedSketch's validation record as JSON text). This module sits
below the sketch classes (``CountSketch.save`` imports it), so it knows them
only by their attributes; :func:`fastlr.learned_sketch.load_sketch` turns the
arrays read here back into sketches.

Entries: ``format`` (``FORMAT``), ``version`` (``VERSION``), ``kind``
("countsketch", "learned" or "heavy"), ``m``, ``rows``, ``values``, ``seed`` (-1: none);
a learned sketch adds ``k``, ``mixed`` ("" for None), ``history``, optionally
``validation``, and for a mixed one ``fixed_m``, ``fixed_rows``, ``fixed_values``.
A HeavyRowSketch is its base's entries with kind "heavy" (so a reader that does not
know it refuses the file rather than dropping the apply-time rule), ``base_kind``
("countsketch" or "learned"), ``heavy_threshold``, ``heavy_max_rows`` and ``heavy_seed``.
A sketch whose ``reference`` is set (scw's guard) adds the reference CountSketch as ``reference_m``,
``reference_rows``, ``reference_values`` and ``reference_seed`` (-1: none).
"""

from __future__ import annotations

import io
import json

import numpy as np

from ._data.files import read_npz_arrays

__all__ = ["FORMAT", "VERSION", "read_sketch_arrays", "save_sketch"]

FORMAT = "fastlr.sketch"
VERSION = 1


def save_sketch(S, path) -> None:
    """Write a CountSketch, LearnedSketch or HeavyRowSketch of one of them to ``path`` as an .npz file (no pickle).

    ``path`` is a file name (written as given, no suffix added) or a binary file object.
    """
    heavy = None
    reference = S.reference
    if reference is not None and not _plain_countsketch(reference):
        raise TypeError(f"S: its reference is a {type(reference).__name__}; a sketch file holds a CountSketch "
                        "reference only")
    if hasattr(S, "base") and hasattr(S, "threshold"):  # a HeavyRowSketch: its base's entries and its rule
        heavy = {"heavy_threshold": np.array(S.threshold, dtype=np.float64),
                 "heavy_max_rows": np.array(S.max_rows, dtype=np.int64),
                 "heavy_seed": np.array(S.seed, dtype=np.uint64)}
        S = S.base
    if not (hasattr(S, "rows") and hasattr(S, "values") and hasattr(S, "seed")):  # a CountSketch's attributes
        raise TypeError(f"S: only CountSketch, LearnedSketch (and a HeavyRowSketch of one) can be saved, "
                        f"got {type(S).__name__}")
    learned = hasattr(S, "m_learned")  # a LearnedSketch
    m = S.m_learned if learned else S.m
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "kind": np.array("learned" if learned else "countsketch"),
        "m": np.array(m, dtype=np.int64),
        "rows": S.rows,
        "values": S.values,
        "seed": _seed_entry(S.seed),
    }
    if learned:
        arrays.update(k=np.array(S.k, dtype=np.int64), mixed=np.array(S.mixed or ""), history=S.history)
        if S.validation is not None:  # JSON text, read back without pickle
            arrays.update(validation=np.array(json.dumps(S.validation.to_dict())))
        if S.fixed is not None:
            arrays.update(fixed_m=np.array(S.fixed.m, dtype=np.int64), fixed_rows=S.fixed.rows,
                          fixed_values=S.fixed.values)
    if heavy is not None:
        arrays.update(heavy, kind=np.array("heavy"), base_kind=arrays["kind"])
    if reference is not None:
        arrays.update(reference_m=np.array(reference.m, dtype=np.int64), reference_rows=reference.rows,
                      reference_values=reference.values, reference_seed=_seed_entry(reference.seed))
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _seed_entry(seed) -> np.ndarray:
    return np.array(-1, dtype=np.int64) if seed is None else np.array(seed, dtype=np.uint64)


def _plain_countsketch(S) -> bool:
    """A CountSketch by its attributes (not a learned, heavy-row, dense or stacked sketch)."""
    return all(hasattr(S, a) for a in ("rows", "values", "seed")) and not any(
        hasattr(S, a) for a in ("m_learned", "base"))


_ZIP_MAGIC = b"PK\x03\x04"  # every .npz (np.savez) starts with a zip entry
_NPY_MAGIC = b"\x93NUMPY"


def read_sketch_arrays(path) -> dict:
    """The arrays of an .npz file; ValueError naming ``path`` when it is not a readable one."""
    if isinstance(path, (int, np.integer)):  # open(1) would take over (and then close) file descriptor 1
        raise TypeError(f"path: expected a file name or path, got {type(path).__name__} {path!r}")
    if hasattr(path, "read"):  # a file object, as S.save(path) takes: its remaining bytes
        data = path.read()
        if not isinstance(data, bytes):
            raise TypeError(f"path: expected a file name or a binary file object, got a text file {path!r}")
        magic, source = data[:len(_NPY_MAGIC)], io.BytesIO(data)
    else:
        source = path
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
    if not magic.startswith(_ZIP_MAGIC):
        if magic == _NPY_MAGIC:
            what = "it is a NumPy .npy array"
        elif not magic:
            what = "the file is empty"
        else:
            what = "it is not an .npz archive"
        raise ValueError(f"path: {path} is not a fastlr sketch file ({what}; sketches are .npz files "
                         "written by S.save(path))")
    try:  # every member's header is checked against the file's size before anything is allocated
        return read_npz_arrays(source)
    except ValueError as exc:
        if "objects" in str(exc):  # an entry of dtype object: fastlr never unpickles
            raise ValueError(f"path: {path} is not a fastlr sketch file (it holds an object array, "
                             "which fastlr does not load)") from None
        raise ValueError(f"path: {path} is not a readable fastlr sketch file: {exc}") from None
