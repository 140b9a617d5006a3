"""Hostile and out-of-range inputs: every one is a clean ValueError/TypeError naming the argument
or the file, never a crash, a huge allocation or a silently wrong result.

Where a crash (segfault, abort, heap corruption) is possible the call runs in a subprocess, in an
empty folder, and the test asserts the process exited normally after a clean Python exception.
"""

import io
import json
import os
import re
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import SUBPROCESS_TIMEOUT, run_many_outside_tree, run_python

import fastlr
from fastlr import _validation, cli
from fastlr._matrix import on_each_block
from fastlr.lowrank import LowRank

# --------------------------------------------------------------------------- corrupt sparse structure

#: Code shared by the subprocesses: ``corrupt(kind)`` is a 60 x 40 sparse matrix with one defect.
_CORRUPT = textwrap.dedent('''
    import json, sys
    import numpy as np, scipy.sparse as sp

    def valid(fmt="csr", seed=0):
        return sp.random(60, 40, density=0.2, format=fmt, random_state=seed, dtype=np.float64)

    def corrupt(kind):
        if kind == "csr_index_high":
            A = valid(); A.indices[3] = 10**6
        elif kind == "csr_index_just_out":
            A = valid(); A.indices[-1] = 40
        elif kind == "csr_index_negative":
            A = valid(); A.indices[5] = -3
        elif kind == "csr_indptr_short":
            A = valid(); A.indptr = A.indptr[:-1].copy()
        elif kind == "csr_indptr_start":
            A = valid(); A.indptr = A.indptr + 1
        elif kind == "csr_indptr_decreasing":
            A = valid(); A.indptr[10], A.indptr[11] = A.indptr[11], A.indptr[10] - 5
        elif kind == "csr_indptr_past_end":
            A = valid(); A.indptr[-1] = len(A.indices) + 100
        elif kind == "csr_data_short":
            A = valid(); A.data = A.data[:-2].copy()
        elif kind == "csc_index_high":
            A = valid("csc"); A.indices[7] = 10**6
        elif kind == "coo_row_high":
            A = valid("coo"); A.row[2] = 60
        elif kind == "coo_col_negative":
            A = valid("coo"); A.col[4] = -1
        elif kind == "csr_array_index_high":
            A = sp.csr_array(valid()); A.indices[0] = 41
        else:
            raise KeyError(kind)
        return A

    def outcome(fn):
        try:
            fn()
        except Exception as exc:
            return [type(exc).__name__, str(exc)]
        return ["ok", ""]
''')

CORRUPTIONS = [
    "csr_index_high", "csr_index_just_out", "csr_index_negative", "csr_indptr_short", "csr_indptr_start",
    "csr_indptr_decreasing", "csr_indptr_past_end", "csr_data_short", "csc_index_high", "coo_row_high",
    "coo_col_negative", "csr_array_index_high",
]

#: Entry point -> (code calling it on the corrupt matrix A, the argument name the error must give).
ENTRY_POINTS = {
    "CountSketch": ("fastlr.CountSketch(10, 60) @ A", "A"),
    "CountSketch.numpy": ("fastlr.CountSketch(10, 60).apply(A, backend='numpy')", "A"),
    "GaussianSketch": ("fastlr.GaussianSketch(10, 60) @ A", "A"),
    "StackedSketch": ("fastlr.stack([fastlr.CountSketch(5, 60), fastlr.GaussianSketch(5, 60)]) @ A", "A"),
    "HeavyRowSketch": ("fastlr.HeavyRowSketch(fastlr.CountSketch(10, 60)) @ A", "A"),
    "gather_dot": ("fastlr.CountSketch(10, 60).gather_dot(A, np.ones((10, 40)))", "A"),
    "transpose": ("fastlr.CountSketch(60, 10).T @ A", "Y"),
    "scw": ("fastlr.scw(A, fastlr.CountSketch(10, 60), 3)", "A"),
    "randomized_svd": ("fastlr.randomized_svd(A, 3, random_state=0)", "A"),
    "randomized_svd_countsketch": ("fastlr.randomized_svd(A, 3, sketch='countsketch', random_state=0)", "A"),
    "learn_sketch": ("fastlr.learn_sketch([A, valid(seed=1)], 10, 3, steps=1, progress=False)", "train[0]"),
    "learn_sketch_val": ("fastlr.learn_sketch([valid(seed=1)], 10, 3, steps=1, progress=False, val=[A])", "val[0]"),
    "sketch_error": ("fastlr.sketch_error(fastlr.CountSketch(10, 60), [valid(seed=1), A], 3)", "matrices[1]"),
    "gd_svd": ("fastlr.gd_svd(A, 3, max_iter=2, random_state=0)", "A"),
    "gd_svd_nonzero": ("fastlr.gd_svd(A, 3, mask='nonzero', max_iter=2, random_state=0)", "A"),
    "gd_svd_mask": ("fastlr.gd_svd(valid(seed=1), 3, mask=A, max_iter=2, random_state=0)", "mask"),
    "spectral_norm": ("fastlr.datasets.spectral_norm(A)", "A"),
    "normalize": ("fastlr.datasets.normalize(A)", "A"),
    "LowRank.error": ("fastlr.scw(valid(seed=1), fastlr.CountSketch(10, 60), 3).error(A)", "A"),
    "TruncatedSVD": ("fastlr.estimators.TruncatedSVD(3, random_state=0).fit(A)", ""),
}


def _run_entry_points(names, kinds):
    code = _CORRUPT + textwrap.dedent(f'''
        import fastlr, fastlr.estimators
        calls = {json.dumps({name: ENTRY_POINTS[name][0] for name in names})}
        results = {{}}
        for name, call in calls.items():
            for kind in {json.dumps(kinds)}:
                A = corrupt(kind)
                results[name + "/" + kind] = outcome(lambda: eval(call))
                sys.stdout.flush()
        print(json.dumps(results))
    ''')
    return run_python(code)


@pytest.mark.parametrize("names", [
    ["CountSketch", "CountSketch.numpy", "GaussianSketch", "StackedSketch", "HeavyRowSketch", "gather_dot",
     "transpose"],
    ["scw", "randomized_svd", "randomized_svd_countsketch", "spectral_norm", "normalize", "LowRank.error"],
    ["learn_sketch", "learn_sketch_val", "sketch_error"],
    ["gd_svd", "gd_svd_nonzero", "gd_svd_mask", "TruncatedSVD"],
], ids=["sketches", "svd", "learn", "gd-estimators"])
def test_corrupt_sparse_structure_is_a_value_error_everywhere(names):
    kinds = [k for k in CORRUPTIONS if not ("TruncatedSVD" in names and k.startswith("coo"))]
    out = _run_entry_points(names, kinds)
    # A negative return code is death by a signal (segfault, abort): the bug this test is about.
    assert out.returncode == 0, (out.returncode, out.stdout[-2000:], out.stderr[-4000:])
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(results) == len(names) * len(kinds)
    for case, (kind, message) in results.items():
        name = ENTRY_POINTS[case.split("/")[0]][1]
        assert kind == "ValueError", (case, kind, message)
        assert message.startswith(f"{name}: corrupt sparse matrix") or not name, (case, message)
        if not name:  # the estimator: scikit-learn's check_array may name it differently
            assert "corrupt sparse matrix" in message or "index" in message, (case, message)


def test_corrupt_coo_into_an_estimator():
    out = _run_entry_points(["TruncatedSVD"], ["coo_row_high", "coo_col_negative"])
    assert out.returncode == 0, (out.returncode, out.stderr[-3000:])
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(kind == "ValueError" for kind, _ in results.values()), results


def test_check_sparse_accepts_valid_matrices_unchanged():
    rng = np.random.default_rng(0)
    A = sp.random(30, 20, density=0.3, format="csr", random_state=rng)
    for M in (A, A.tocsc(), sp.csr_array(A), sp.csc_array(A)):
        assert _validation.check_sparse(M) is M
    for M in (A.tocoo(), A.tolil(), A.todok(), A.tobsr(), A.todia(), sp.coo_array(A)):
        out = _validation.check_sparse(M)
        assert out.format == "csr"
        np.testing.assert_array_equal(out.toarray(), A.toarray())
    empty = sp.csr_matrix((5, 4))
    assert _validation.check_sparse(empty) is empty
    # spare capacity after indptr[-1] (allowed by scipy) is dropped, on a copy
    spare = A.copy()
    spare.data, spare.indices = np.r_[A.data, 9.0, 9.0], np.r_[A.indices, 0, 0].astype(A.indices.dtype)
    out = _validation.check_sparse(spare)
    assert len(out.indices) == A.nnz and len(spare.indices) == A.nnz + 2
    np.testing.assert_array_equal(out.toarray(), A.toarray())
    np.testing.assert_allclose(fastlr.CountSketch(5, 30) @ spare, fastlr.CountSketch(5, 30) @ A)


def test_check_sparse_names_the_argument_in_process():
    A = sp.random(6, 5, density=0.5, format="csr", random_state=0)
    A.indices[0] = 5
    with pytest.raises(ValueError, match=r"^B: corrupt sparse matrix: column index 5 lies outside \[0, 5\)"):
        _validation.as_matrix(A, "B")
    C = sp.random(6, 5, density=0.5, format="csc", random_state=0)
    C.indices[0] = -1
    with pytest.raises(ValueError, match=r"^A: corrupt sparse matrix: row index -1 lies outside \[0, 6\)"):
        _validation.check_sparse(C)
    D = sp.random(6, 5, density=0.5, format="csr", random_state=0)
    D.indices = D.indices.astype(np.float64)
    with pytest.raises(ValueError, match="indices must be a 1-D integer array"):
        _validation.check_sparse(D)


# --------------------------------------------------------------------------- corrupt sparse files


def _corrupt_files(folder):
    """(file name, how it is corrupt): scipy.sparse.save_npz files and a Matrix Market file."""
    rng = np.random.default_rng(0)
    files = {}
    for fmt in ("csr", "csc", "coo"):
        A = sp.random(60, 40, density=0.2, format=fmt, random_state=rng)
        if fmt == "coo":
            A.row[3] = 1000
        else:
            A.indices[3] = 10**6
        sp.save_npz(folder / f"bad_{fmt}.npz", A, compressed=False)
        files[f"bad_{fmt}.npz"] = fmt
    A = sp.random(60, 40, density=0.2, format="csr", random_state=rng)
    A.indptr[5] = A.indptr[6] + 3  # decreasing
    sp.save_npz(folder / "bad_indptr.npz", A)
    files["bad_indptr.npz"] = "indptr"
    (folder / "bad.mtx").write_text("%%MatrixMarket matrix coordinate real general\n3 3 2\n1 1 1.0\n7 2 2.0\n")
    files["bad.mtx"] = "mtx"
    return files


def test_corrupt_sparse_files_are_value_errors_naming_the_file(tmp_path):
    files = _corrupt_files(tmp_path)
    code = textwrap.dedent(f'''
        import json, pathlib
        import fastlr
        folder = pathlib.Path({str(tmp_path)!r})
        out = {{}}
        for name in {json.dumps(sorted(files))}:
            for what, call in [("load_matrix", lambda: fastlr.datasets.load_matrix(folder / name)),
                               ("spectral_norm", lambda: fastlr.datasets.spectral_norm(
                                   fastlr.datasets.load_matrix(folder / name)))]:
                try:
                    call()
                    out[name + "/" + what] = ["ok", ""]
                except Exception as exc:
                    out[name + "/" + what] = [type(exc).__name__, str(exc)]
        print(json.dumps(out))
    ''')
    out = run_python(code)
    assert out.returncode == 0, (out.returncode, out.stderr[-4000:])
    for case, (kind, message) in json.loads(out.stdout.strip().splitlines()[-1]).items():
        name = case.split("/")[0]
        assert kind == "ValueError", (case, kind, message)
        assert message.startswith(f"path: {tmp_path / name}"), (case, message)


def _cli(*args):
    return [sys.executable, "-m", "fastlr", *map(str, args)]


def _run_cli_commands(commands, at_once=6):
    """Run the fastlr commands (lists of arguments), a few processes at a time (the machine is shared)."""
    results = []
    for i in range(0, len(commands), at_once):
        results += run_many_outside_tree([_cli(*args) for args in commands[i : i + at_once]],
                                         timeout=SUBPROCESS_TIMEOUT)
    return results


def test_corrupt_sparse_files_every_cli_command(tmp_path):
    files = _corrupt_files(tmp_path)
    good = tmp_path / "good"
    good.mkdir()
    for i in range(3):
        sp.save_npz(good / f"{i}.npz", sp.random(60, 40, density=0.2, format="csr", random_state=i))
    sketch = tmp_path / "sketch.npz"
    fastlr.CountSketch(10, 60, seed=0).save(sketch)
    out = tmp_path / "out.npz"
    commands = []
    for name in files:
        bad = tmp_path / name
        folder = tmp_path / f"folder_{name}"
        folder.mkdir()
        (folder / name).write_bytes(bad.read_bytes())
        (folder / "z_good.npz").write_bytes((good / "0.npz").read_bytes())
        commands += [
            (["approx", bad, "-k", 3, "-o", out], name),
            (["approx", bad, "-k", 3, "-o", out, "--method", "countsketch", "--n-iter", 0], name),
            (["approx", bad, "-k", 3, "-o", out, "--method", "gd"], name),
            (["approx", bad, "-k", 3, "-o", out, "--method", "learned", "--sketch", sketch], name),
            (["train", bad, "-m", 10, "-k", 3, "-o", tmp_path / "s.npz", "--steps", 1], name),
            (["train", folder, "-m", 10, "-k", 3, "-o", tmp_path / "s.npz", "--steps", 1], name),
            (["train", good, "-m", 10, "-k", 3, "-o", tmp_path / "s.npz", "--steps", 1, "--val", bad], name),
            (["eval", sketch, bad, "-k", 3], name),
            (["eval", sketch, folder, "-k", 3], name),
        ]
    results = _run_cli_commands([args for args, _ in commands])
    for (args, name), res in zip(commands, results):
        where = " ".join(map(str, args))
        assert res.returncode == 2, (where, res.returncode, res.stderr[-3000:])  # never a signal
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fastlr: error:"), (where, res.stderr)
        assert name in lines[0] and "Traceback" not in res.stderr, (where, lines[0])
    assert not out.exists() and not (tmp_path / "s.npz").exists()


# --------------------------------------------------------------------------- sizes, seeds, threads


def test_check_int_maximum():
    assert _validation.check_int(5, "x", minimum=0, maximum=5) == 5
    with pytest.raises(ValueError, match=r"^x: must be <= 5, got 6$"):
        _validation.check_int(6, "x", maximum=5)
    assert _validation.check_int(np.uint64(2**64 - 1), "seed", maximum=_validation.UINT64_MAX) == 2**64 - 1
    with pytest.raises(TypeError, match="^x: expected an integer"):
        _validation.check_int(1.0, "x", maximum=5)


@pytest.mark.parametrize("make, name", [
    (lambda: fastlr.CountSketch(10, 2**63), "n"),
    (lambda: fastlr.CountSketch(10, 2**64 + 5), "n"),
    (lambda: fastlr.CountSketch(2**32 + 1, 10), "m"),
    (lambda: fastlr.CountSketch(10, 5, seed=2**64), "seed"),
    (lambda: fastlr.CountSketch(10, 5, seed=-1), "seed"),
    (lambda: fastlr.CountSketch.from_arrays([0, 1], [1.0, 1.0], 2**63), "m"),
    (lambda: fastlr.GaussianSketch(10, 5, seed=2**64), "seed"),
    (lambda: fastlr.GaussianSketch(2**63, 5), "m"),
    (lambda: fastlr.sketch.countsketch_hash(2**64, 4, 0, 10), "seed"),
    (lambda: fastlr.sketch.countsketch_hash(0, 2**33, 0, 10), "m"),
    (lambda: fastlr.StackedSketch([]), "sketches"),
    (lambda: fastlr.stack([]), "sketches"),
    (lambda: fastlr.StackedSketch([fastlr.CountSketch(2, 5), fastlr.CountSketch(2, 6)]), "sketches[1]"),
    (lambda: fastlr.learn_sketch([np.ones((5, 2))], 2, 1, steps=1, seed=2**64 - 1, progress=False), "seed"),
    (lambda: fastlr.set_num_threads(2**40), "n"),
    (lambda: fastlr.set_num_threads(2**31), "n"),
    (lambda: fastlr.set_num_threads(0), "n"),
])
def test_out_of_range_sizes_seeds_and_threads(make, name):
    with pytest.raises(ValueError, match="^" + re.escape(name) + ": "):
        make()


def test_wrong_types_of_sizes_and_sketch_lists():
    with pytest.raises(TypeError, match=r"^sketches\[0\]: expected a fastlr sketch"):
        fastlr.StackedSketch([1])
    with pytest.raises(TypeError, match="^sketches: expected an iterable"):
        fastlr.StackedSketch(fastlr.CountSketch(2, 5))
    with pytest.raises(TypeError, match="^n: number of threads must be an integer"):
        fastlr.set_num_threads(2.0)
    with pytest.raises(TypeError, match="^seed: expected an integer"):
        fastlr.CountSketch(4, 5, seed=1.5)


def test_largest_seed_works_and_bad_thread_count_leaves_the_setting():
    S = fastlr.CountSketch(4, 50, seed=2**64 - 1)
    assert S.seed == 2**64 - 1 and S.rows.min() >= 0 and S.rows.max() < 4
    assert fastlr.GaussianSketch(4, 50, seed=2**64 - 1).matrix.shape == (4, 50)
    before = fastlr.get_num_threads()
    with pytest.raises(ValueError):
        fastlr.set_num_threads(2**40)
    with pytest.raises(ValueError):
        with fastlr.thread_limit(2**40):
            pass
    assert fastlr.get_num_threads() == before
    A = np.random.default_rng(0).standard_normal((50, 3))
    for backend in fastlr.available_backends():  # the kernels still run
        np.testing.assert_allclose(S.apply(A, backend=backend), S.to_dense() @ A, atol=1e-12)


def test_huge_thread_count_in_the_environment_is_ignored():
    out = run_python("import fastlr, numpy as np; print(fastlr.get_num_threads()); "
                     "print((fastlr.CountSketch(3, 10) @ np.ones((10, 2))).shape)", OMP_NUM_THREADS="1099511627776")
    assert out.returncode == 0, out.stderr
    threads, shape = out.stdout.split("\n")[:2]
    assert 1 <= int(threads) <= 2**15 and shape == "(3, 2)"


def test_thread_options_on_the_command_line():
    res = run_many_outside_tree([_cli("--threads", 2**40, "info"), _cli("info", "--threads", 2**31)])
    for r in res:
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "threads" in r.stderr, r.stderr


# --------------------------------------------------------------------------- hostile sketch files


def _npy_bytes(shape, descr="<f8", body=b""):
    """An NPY header declaring ``shape`` of ``descr``, followed by ``body`` (not necessarily matching)."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
    return f.getvalue() + body


def _rewrite(src, dst, replace, compression=zipfile.ZIP_STORED, extra=None):
    """Copy the zip ``src`` to ``dst`` with some members' bytes replaced (and ``extra`` members added)."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", compression=compression) as out:
        for info in z.infolist():
            out.writestr(info.filename, replace.get(info.filename, z.read(info)))
        for name, data in (extra or {}).items():
            out.writestr(name, data)


def _hostile_sketches(folder):
    good = folder / "good.npz"
    fastlr.CountSketch(5, 40, seed=1).save(good)
    values = fastlr.CountSketch(5, 40, seed=1).values
    cases = {
        "no_header.npz": dict(replace={"rows.npy": b"these bytes are not a NumPy array"}),
        "huge.npz": dict(replace={"values.npy": _npy_bytes((2**40,), body=values.tobytes())}),
        "huge_deflated.npz": dict(replace={"values.npy": _npy_bytes((2**40,), body=values.tobytes())},
                                  compression=zipfile.ZIP_DEFLATED),
        "huge_2d.npz": dict(replace={"rows.npy": _npy_bytes((2**20, 2**20), "<i8")}),
        "huge_string.npz": dict(replace={"format.npy": _npy_bytes((), "<U1000000000")}),
        "short.npz": dict(replace={"values.npy": _npy_bytes((40,), body=values.tobytes()[:100])}),
        "bad_header.npz": dict(replace={"values.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 'xx'   \n"}),
        "object.npz": dict(replace={"values.npy": _npy_bytes((2,), "|O", b"\x00" * 16)}),
        "not_npy_member.npz": dict(replace={}, extra={"notes.txt": b"hello"}),
        "huge_m.npz": dict(replace={"m.npy": _npy_bytes((), "<i8", np.int64(2**40).tobytes())}),
    }
    for name, options in cases.items():
        _rewrite(good, folder / name, **options)
    # a deflated member whose compressed bytes are damaged (zlib's error, or a CRC mismatch)
    _rewrite(good, folder / "bad_deflate.npz", replace={}, compression=zipfile.ZIP_DEFLATED)
    data = bytearray((folder / "bad_deflate.npz").read_bytes())
    with zipfile.ZipFile(folder / "bad_deflate.npz") as z:
        info = z.getinfo("values.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 2 : start + 12] = b"\xff" * 10
    (folder / "bad_deflate.npz").write_bytes(bytes(data))
    return [*cases, "bad_deflate.npz"]


def test_hostile_sketch_files_are_value_errors_before_allocating(tmp_path):
    names = _hostile_sketches(tmp_path)
    # In a subprocess whose address space is capped at 4 GiB: an allocation of what a hostile
    # header declares fails there (MemoryError) instead of being a ValueError.
    code = textwrap.dedent(f'''
        import json, pathlib, resource
        import fastlr
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, resource.RLIM_INFINITY))
        folder = pathlib.Path({str(tmp_path)!r})
        out = {{}}
        for name in {json.dumps(names)}:
            try:
                fastlr.load_sketch(folder / name)
                out[name] = ["ok", ""]
            except Exception as exc:
                out[name] = [type(exc).__name__, str(exc)]
        print(json.dumps(out))
    ''')
    res = run_python(code)
    assert res.returncode == 0, (res.returncode, res.stderr[-3000:])
    results = json.loads(res.stdout.strip().splitlines()[-1])
    for name in names:
        kind, message = results[name]
        assert kind == "ValueError", (name, kind, message)
        assert message.startswith(f"path: {tmp_path / name}"), (name, message)
        assert "pickle" not in message
    assert "no NumPy (.npy) header" in results["no_header.npz"][1]
    assert "8796093022208 bytes" in results["huge.npz"][1]


def test_hostile_sketch_files_on_the_command_line(tmp_path):
    names = _hostile_sketches(tmp_path)
    np.save(tmp_path / "A.npy", np.random.default_rng(0).standard_normal((40, 6)))
    commands = []
    for name in names:
        commands.append(["eval", tmp_path / name, tmp_path / "A.npy", "-k", 2])
        commands.append(["approx", tmp_path / "A.npy", "-k", 2, "-o", tmp_path / "out.npz", "--method", "learned",
                         "--sketch", tmp_path / name])
    results = _run_cli_commands(commands)
    for args, res in zip(commands, results):
        assert res.returncode == 2, (args, res.returncode, res.stderr[-3000:])
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and str(args[1] if args[0] == "eval" else args[-1]) in lines[0], (args, res.stderr)


def test_hostile_matrix_files_are_value_errors_before_allocating(tmp_path):
    (tmp_path / "huge.npy").write_bytes(_npy_bytes((2**20, 2**20), body=b"\x00" * 64))
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("A.npy", _npy_bytes((2**20, 2**20), body=b"\x00" * 64))
    A = sp.random(20, 10, density=0.3, format="csr", random_state=0)
    sp.save_npz(tmp_path / "sparse.npz", A, compressed=False)
    _rewrite(tmp_path / "sparse.npz", tmp_path / "huge_sparse.npz",
             replace={"indices.npy": _npy_bytes((2**40,), "<i4", A.indices.tobytes())})
    _rewrite(tmp_path / "sparse.npz", tmp_path / "no_header_sparse.npz", replace={"data.npy": b"garbage"})
    for name in ("huge.npy", "huge.npz", "huge_sparse.npz", "no_header_sparse.npz"):
        with pytest.raises(ValueError, match=rf"^path: {tmp_path / name}: cannot read"):
            fastlr.datasets.load_matrix(tmp_path / name)
    with pytest.raises(ValueError, match=r"^path: .*huge\.npy: cannot read"):
        fastlr.datasets.load_matrix(tmp_path / "huge.npy", mmap=True)


def test_sketch_files_still_round_trip(tmp_path):
    train = [np.random.default_rng(i).standard_normal((60, 8)) for i in range(3)]
    S = fastlr.learn_sketch(train, 6, 2, steps=3, mixed="joint", holdout=0, progress=False)
    S.save(tmp_path / "S.npz")
    T = fastlr.load_sketch(tmp_path / "S.npz")
    np.testing.assert_array_equal(T.values, S.values)
    for field in S.history.dtype.names:
        np.testing.assert_array_equal(T.history[field], S.history[field])
    big = fastlr.CountSketch(3, 20, seed=2**64 - 1)  # seeds past int64 are saved (as uint64)
    big.save(tmp_path / "big.npz")
    assert fastlr.load_sketch(tmp_path / "big.npz").seed == 2**64 - 1
    with open(tmp_path / "f.npz", "wb") as f:
        S.save(f)  # a file object works too
    np.testing.assert_array_equal(fastlr.load_sketch(tmp_path / "f.npz").to_dense(), S.to_dense())


# --------------------------------------------------------------------------- CLI outputs


def _interrupting_savez(monkeypatch, exc=KeyboardInterrupt):
    """np.savez that writes part of the file, then is interrupted."""
    real = np.savez

    def savez(file, *args, **kwds):
        buffer = io.BytesIO()
        real(buffer, *args, **kwds)
        data = buffer.getvalue()
        if hasattr(file, "write"):
            file.write(data[: len(data) // 2])
        else:
            with open(file if str(file).endswith(".npz") else f"{file}.npz", "wb") as f:
                f.write(data[: len(data) // 2])
        raise exc()

    monkeypatch.setattr(np, "savez", savez)


@pytest.mark.parametrize("exc, status", [(KeyboardInterrupt, 130), (OSError, 2)])
def test_interrupted_approx_keeps_the_previous_output(tmp_path, monkeypatch, capsys, exc, status):
    A = np.random.default_rng(0).standard_normal((50, 8))
    np.save(tmp_path / "A.npy", A)
    out = tmp_path / "out.npz"
    assert cli.main(["approx", str(tmp_path / "A.npy"), "-k", "2", "-o", str(out), "-q"]) == 0
    before = out.read_bytes()
    _interrupting_savez(monkeypatch, exc)
    assert cli.main(["approx", str(tmp_path / "A.npy"), "-k", "3", "-o", str(out), "-q"]) == status
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.npy", "out.npz"]  # no temporary file left
    with np.load(out) as z:
        assert z["s"].shape == (2,)
    capsys.readouterr()


def test_interrupted_train_keeps_the_previous_sketch(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "A.npy", np.random.default_rng(0).standard_normal((50, 8)))
    out = tmp_path / "sketch.npz"
    args = ["train", str(tmp_path / "A.npy"), "-m", "4", "-k", "2", "--steps", "2", "-o", str(out), "-q"]
    assert cli.main(args) == 0
    before = out.read_bytes()
    _interrupting_savez(monkeypatch)
    assert cli.main(args[:-3] + ["--seed", "5", "-o", str(out), "-q"]) == 130
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.npy", "sketch.npz"]
    assert fastlr.load_sketch(out).m == 4
    capsys.readouterr()


def test_interrupted_plot_keeps_the_previous_plot(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    np.save(tmp_path / "A.npy", np.random.default_rng(0).standard_normal((50, 8)))
    plot = tmp_path / "s.png"
    args = ["approx", str(tmp_path / "A.npy"), "-k", "2", "-o", str(tmp_path / "out.npz"), "--plot", str(plot), "-q"]
    assert cli.main(args) == 0
    before = plot.read_bytes()

    def savefig(self, fname, **kwds):
        fname.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    assert cli.main(args) == 130
    assert plot.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.npy", "out.npz", "s.png"]
    capsys.readouterr()


def test_outputs_report_the_file_written(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    np.save(tmp_path / "A.npy", np.random.default_rng(0).standard_normal((50, 8)))
    umask = os.umask(0)
    os.umask(umask)
    for given, written in [("out", "out.npz"), ("out.npz", "out.npz"), ("o.v1", "o.v1.npz")]:
        assert cli.main(["approx", str(tmp_path / "A.npy"), "-k", "2", "-o", str(tmp_path / given), "--json",
                         "--plot", str(tmp_path / "plot")]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["output"] == str(tmp_path / written)
        assert result["plot"] == str(tmp_path / "plot.png")
        assert (tmp_path / written).is_file() and (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / written).stat().st_mode & 0o777 == 0o666 & ~umask
    assert cli.main(["approx", str(tmp_path / "A.npy"), "-k", "2", "-o", str(tmp_path / "t")]) == 0
    assert str(tmp_path / "t.npz") in capsys.readouterr().out
    assert not (tmp_path / "out").exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir())
    for command in (["approx", str(tmp_path / "A.npy"), "-k", "2", "-o", str(tmp_path / "new.npz")],
                    ["train", str(tmp_path / "A.npy"), "-m", "4", "-k", "2", "-o", str(tmp_path / "new.npz")]):
        # a plot that cannot be written fails before the computation, and nothing is written
        assert cli.main([*command, "--plot", str(tmp_path / "absent" / "p.png")]) == 2
        assert "--plot" in capsys.readouterr().err and not (tmp_path / "new.npz").exists()
    (tmp_path / "dir.npz").mkdir()
    assert cli.main(["approx", str(tmp_path / "A.npy"), "-k", "2", "-o", str(tmp_path / "dir")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "A.npy", np.ones((20, 4)))

    def no_memory(*args, **kwds):
        raise MemoryError("Unable to allocate 8.00 TiB for an array with shape (2**40,)")

    monkeypatch.setattr(fastlr, "randomized_svd", no_memory)
    assert cli.main(["approx", str(tmp_path / "A.npy"), "-k", "2", "-o", str(tmp_path / "o.npz")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fastlr: error: out of memory (Unable to allocate 8.00 TiB for an array with shape (2**40,))"]


# --------------------------------------------------------------------------- approx's default


def _rank10_plus_noise():
    rng = np.random.default_rng(0)
    L = rng.standard_normal((400, 10)) @ rng.standard_normal((10, 300))
    return L + 0.01 * np.linalg.norm(L) / np.sqrt(L.size) * rng.standard_normal(L.shape)


def test_approx_default_is_near_optimal(tmp_path, capsys):
    A = _rank10_plus_noise()
    np.save(tmp_path / "A.npy", A)  # memory-mapped: row blocks
    np.savez(tmp_path / "A.npz", A=A)  # in memory
    optimal = np.sqrt(np.sum(np.linalg.svd(A, compute_uv=False)[10:] ** 2))
    errors = {}
    for name in ("A.npy", "A.npz"):
        for extra in ([], ["--method", "countsketch"], ["--method", "countsketch", "--n-iter", "0"]):
            out = tmp_path / "out.npz"
            assert cli.main(["approx", str(tmp_path / name), "-k", "10", "-o", str(out), "--json", *extra]) == 0
            result = json.loads(capsys.readouterr().out)
            with np.load(out) as z:
                errors[(name, *extra)] = np.linalg.norm(A - (z["U"] * z["s"]) @ z["Vt"]) / optimal
            assert result["n_iter"] == (0 if "0" in extra else 7)
            assert result["method"] == (extra[1] if extra else "randomized")
    for key, ratio in errors.items():
        if "0" not in key:
            assert ratio <= 1.01, (key, ratio)
    # the one-pass path stays available (and is what the old default gave)
    assert errors["A.npy", "--method", "countsketch", "--n-iter", "0"] > 1.05


def test_approx_default_matches_randomized_svd(tmp_path, capsys):
    A = _rank10_plus_noise()[:200, :60]
    np.savez(tmp_path / "A.npz", A=A)
    assert cli.main(["approx", str(tmp_path / "A.npz"), "-k", "4", "-o", str(tmp_path / "o.npz"), "--seed", "3",
                     "-q"]) == 0
    U, s, Vt = fastlr.randomized_svd(A, 4, random_state=3)
    with np.load(tmp_path / "o.npz") as z:
        np.testing.assert_allclose(z["s"], s, rtol=1e-12)
        np.testing.assert_allclose(np.abs(z["U"].T @ U), np.eye(4), atol=1e-8)


def test_approx_n_iter_option(tmp_path, capsys):
    np.save(tmp_path / "A.npy", np.random.default_rng(0).standard_normal((40, 6)))
    out = str(tmp_path / "o.npz")
    assert cli.main(["approx", str(tmp_path / "A.npy"), "-k", "2", "-o", out, "--n-iter", "auto", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_iter"] == 4  # k >= 0.1 min(shape)
    assert cli.main(["approx", str(tmp_path / "A.npy"), "-k", "2", "-o", out, "--n-iter", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_iter"] == 3
    with pytest.raises(SystemExit) as info:
        cli.main(["approx", str(tmp_path / "A.npy"), "-k", "2", "-o", out, "--n-iter", "many"])
    assert info.value.code == 2
    assert "expected 'auto' or an integer >= 0, got 'many'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["approx", "--help"])
    help_text = capsys.readouterr().out  # names the default and the fast path
    assert "randomized_svd" in help_text and "--n-iter 0" in help_text and "auto" in help_text


def test_row_block_progress_hook(tmp_path):
    np.save(tmp_path / "A.npy", np.random.default_rng(0).standard_normal((300, 20)))
    A = np.load(tmp_path / "A.npy", mmap_mode="r")
    calls = []
    with on_each_block(lambda: calls.append(1)):
        fastlr.randomized_svd(A, 3, n_iter=2, random_state=0)
    assert len(calls) >= 3  # the first pass, the power steps and B = A V read the one block
    seen = len(calls)
    fastlr.randomized_svd(A, 3, n_iter=2, random_state=0)  # outside the block: no calls
    assert len(calls) == seen


# --------------------------------------------------------------------------- dask scw


def test_scw_of_a_dask_array_is_a_lowrank():
    da = pytest.importorskip("dask.array")
    A = np.random.default_rng(0).standard_normal((300, 20))
    S = fastlr.CountSketch(10, 300, seed=2)
    result = fastlr.scw(da.from_array(A, chunks=(100, 20)), S, 5)
    reference = fastlr.scw(A, S, 5)
    assert isinstance(result, LowRank) and isinstance(reference, LowRank)
    assert result.shape == reference.shape == (300, 20) and result.rank == 5
    U, s, Vt = result
    np.testing.assert_allclose(s, reference.s, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(U), reference.U, atol=1e-9)
    np.testing.assert_allclose(Vt, reference.Vt, atol=1e-9)


# --------------------------------------------------------------------------- threads, leaks, inputs untouched

import threading  # noqa: E402  (sections below were added later; imports kept with their tests)
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from conftest import require_backend  # noqa: E402
from helpers import ALL_BACKENDS, messy_csr  # noqa: E402


def _decaying(n=400, d=60, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * 0.9 ** np.arange(d)


def _many_calls(A, A_sparse, S, backend):
    """The public entry points on one backend, every result as a list of arrays."""
    return [
        S.apply(A, backend=backend), S.apply(np.asfortranarray(A), backend=backend), S.apply(A_sparse, backend=backend),
        *fastlr.randomized_svd(A, 5, random_state=0, backend=backend),
        *fastlr.randomized_svd(A_sparse, 5, random_state=0, sketch="countsketch", n_iter=2, backend=backend),
        *fastlr.scw(A, S, 5, n_iter=1, backend=backend),
        *fastlr.scw(A_sparse, S, 5, backend=backend),
        *fastlr.gd_svd(A, 5, max_iter=30, random_state=0, backend=backend),
        *fastlr.gd_svd(A_sparse, 3, max_iter=30, random_state=0, mask="nonzero", backend=backend),
    ]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_concurrent_python_threads_are_bit_identical_to_serial(backend):
    require_backend(backend)
    A = _decaying()
    A_sparse = sp.random(400, 60, density=0.1, format="csr", random_state=1)
    S = fastlr.CountSketch(20, 400, seed=3)
    serial = _many_calls(A, A_sparse, S, backend)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _many_calls(A, A_sparse, S, backend), range(16)))
    for result in results:
        assert len(result) == len(serial)
        for i, (got, expected) in enumerate(zip(result, serial)):
            np.testing.assert_array_equal(got, expected, err_msg=f"result {i}")


def test_switching_threads_and_backend_from_another_thread_mid_flight():
    A = _decaying()
    A_sparse = sp.random(400, 60, density=0.1, format="csr", random_state=1)
    S = fastlr.CountSketch(20, 400, seed=3)
    expected_SA, expected_sparse = S.apply(A, backend="numpy"), S.apply(A_sparse, backend="numpy")
    s_exact = np.linalg.svd(A, compute_uv=False)[:5]
    backends = fastlr.available_backends()
    threads_before, backend_before = fastlr.get_num_threads(), fastlr.current_backend()
    stop = threading.Event()
    switches = [0]

    def switcher():
        i = 0
        while not stop.is_set():
            fastlr.set_num_threads(1 + i % 2)
            fastlr.set_backend(backends[i % len(backends)])
            with fastlr.use_backend(backends[(i + 1) % len(backends)]), fastlr.thread_limit(1 + (i + 1) % 2):
                time.sleep(0.0005)
            i += 1
            switches[0] = i

    t = threading.Thread(target=switcher)
    t.start()
    try:
        deadline = time.perf_counter() + 3.0
        rounds = 0
        while time.perf_counter() < deadline or rounds < 3:
            np.testing.assert_allclose(S @ A, expected_SA, rtol=0, atol=1e-12)
            np.testing.assert_allclose(S @ A_sparse, expected_sparse, rtol=0, atol=1e-12)
            np.testing.assert_allclose(fastlr.randomized_svd(A, 5, random_state=0)[1], s_exact, rtol=1e-8)
            lr = fastlr.scw(A, S, 5, n_iter=2)
            assert np.all(lr.s <= s_exact * (1 + 1e-10)) and lr.s[0] > 0.99 * s_exact[0]
            np.testing.assert_allclose(fastlr.gd_svd(A, 3, max_iter=200, tol=1e-12, random_state=0)[1],
                                       s_exact[:3], rtol=1e-6)
            rounds += 1
    finally:
        stop.set()
        t.join()
        fastlr.set_num_threads(threads_before)
        fastlr.set_backend(backend_before)
    assert switches[0] > rounds  # the settings really changed while the calls ran


def test_small_calls_do_not_leak():
    code = textwrap.dedent('''
        import os, numpy as np, scipy.sparse as sp, fastlr
        page = os.sysconf("SC_PAGE_SIZE")
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page
        A = np.random.default_rng(0).standard_normal((50, 8))
        S = fastlr.CountSketch(5, 50)
        growth = {}
        for name, M in (("dense", A), ("csr", sp.csr_matrix(A * (A > 0.5)))):
            for _ in range(1000):  # warm-up: allocator pools, caches
                S.apply(M, backend="cpp")
            before = rss()
            for _ in range(10000):
                S.apply(M, backend="cpp")
            growth[name] = rss() - before
        for _ in range(50):
            fastlr.randomized_svd(A, 3, random_state=0, backend="cpp")
        before = rss()
        for _ in range(1000):
            fastlr.randomized_svd(A, 3, random_state=0, backend="cpp")
        growth["randomized_svd"] = rss() - before
        print(growth)
    ''')
    require_backend("cpp")
    out = run_python(code)
    assert out.returncode == 0, out.stderr[-3000:]
    growth = eval(out.stdout.strip().splitlines()[-1])
    for name, grown in growth.items():
        assert grown < 0.2 * 2**20, (name, grown)


def _snapshot(M):
    if sp.issparse(M):
        return (M.format, M.shape, M.data.copy(), M.indices.copy(), M.indptr.copy())
    return (M.shape, M.flags.c_contiguous, M.flags.f_contiguous, M.copy(order="K"))


def _assert_same(before, after, case):
    assert len(before) == len(after), case
    for x, y in zip(before, after):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, case
            np.testing.assert_array_equal(x, y, err_msg=case)
        else:
            assert x == y, case


_ENTRY_CALLS = {
    "CountSketch": lambda A: fastlr.CountSketch(8, A.shape[0]).apply(A),
    "GaussianSketch": lambda A: fastlr.GaussianSketch(8, A.shape[0]).apply(A),
    "stack": lambda A: fastlr.stack([fastlr.CountSketch(4, A.shape[0]), fastlr.GaussianSketch(4, A.shape[0])]) @ A,
    "gather_dot": lambda A: fastlr.CountSketch(8, A.shape[0]).gather_dot(A, np.ones((8, A.shape[1]))),
    "scw": lambda A: fastlr.scw(A, fastlr.CountSketch(8, A.shape[0]), 3, n_iter=1),
    "randomized_svd": lambda A: fastlr.randomized_svd(A, 3, random_state=0),
    "randomized_svd_countsketch": lambda A: fastlr.randomized_svd(A, 3, sketch="countsketch", random_state=0),
    "randomized_svd_transpose": lambda A: fastlr.randomized_svd(A, 3, transpose=True, random_state=0),
    "gd_svd": lambda A: fastlr.gd_svd(A, 3, max_iter=5, random_state=0),
    "gd_svd_sgd": lambda A: fastlr.gd_svd(A, 3, optimizer="sgd", max_iter=5, random_state=0),
    "gd_svd_nonzero": lambda A: fastlr.gd_svd(A, 2, mask="nonzero", max_iter=5, random_state=0)
    if sp.issparse(A) else None,
    "learn_sketch": lambda A: fastlr.learn_sketch([A, A], 8, 3, steps=2, val=[A], progress=False),
    "sketch_error": lambda A: fastlr.sketch_error(fastlr.CountSketch(8, A.shape[0]), [A], 3),
    "LowRank.error": lambda A: fastlr.scw(A, fastlr.CountSketch(8, A.shape[0]), 3).error(A),
    "normalize": lambda A: fastlr.datasets.normalize(A),
    "spectral_norm": lambda A: fastlr.datasets.spectral_norm(A),
    "TruncatedSVD": lambda A: __import__("fastlr.estimators").estimators.TruncatedSVD(3, random_state=0).fit(A),
}


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_inputs_are_never_modified(backend):
    require_backend(backend)
    rng = np.random.default_rng(7)
    dense = _decaying(60, 12, seed=7)
    messy = messy_csr(60, 12, 0.3, rng)  # unsorted, duplicated: an in-place sort_indices would show
    inputs = {
        "C": dense, "F": np.asfortranarray(dense), "f32": dense.astype(np.float32), "int": (dense * 10).astype(int),
        "view": _decaying(120, 24)[::2, ::2], "csr": sp.csr_matrix(dense * (np.abs(dense) > 0.5)),
        "csc": sp.csc_matrix(dense * (np.abs(dense) > 0.5)), "messy_csr": messy, "messy_csc": messy.T.tocsr().T,
        "csr_array_i64": sp.csr_array(messy.copy()),
    }
    inputs["csr_array_i64"].indptr = inputs["csr_array_i64"].indptr.astype(np.int64)
    inputs["csr_array_i64"].indices = inputs["csr_array_i64"].indices.astype(np.int64)
    assert inputs["messy_csc"].format == "csc" and not inputs["messy_csr"].has_canonical_format
    with fastlr.use_backend(backend):
        for kind, A in inputs.items():
            for name, call in _ENTRY_CALLS.items():
                before = _snapshot(A)
                try:
                    call(A)
                except ValueError as exc:  # mask="nonzero" on a matrix with an empty row: refused, untouched
                    assert name == "gd_svd_nonzero" and "no observed entries" in str(exc), (name, kind, exc)
                _assert_same(before, _snapshot(A), f"{name} on {kind}")


def test_unsorted_and_duplicate_csr_indices_give_the_canonical_result(backend):
    rng = np.random.default_rng(3)
    low = rng.standard_normal((80, 4)) @ rng.standard_normal((4, 15))
    messy = messy_csr(80, 15, 0.4, rng)
    messy.data += low[np.repeat(np.arange(80), np.diff(messy.indptr)), messy.indices]  # near rank 4
    assert not messy.has_sorted_indices or not messy.has_canonical_format
    canonical = messy.copy()
    canonical.sum_duplicates()
    canonical.sort_indices()
    S = fastlr.CountSketch(10, 80, seed=1)
    for fmt in ("csr", "csc"):
        M, C = (messy, canonical) if fmt == "csr" else (messy.T.tocsr().T, canonical.tocsc())
        assert M.format == C.format == fmt
        for name, call in [
            ("CountSketch", lambda A: S.apply(A, backend=backend)),
            ("GaussianSketch", lambda A: fastlr.GaussianSketch(10, 80).apply(A, backend=backend)),
            ("gather_dot", lambda A: S.gather_dot(A, np.arange(150.0).reshape(10, 15), backend=backend)),
            ("scw", lambda A: fastlr.scw(A, S, 4, n_iter=1, backend=backend).to_dense()),
            ("randomized_svd", lambda A: fastlr.randomized_svd(A, 4, random_state=0, backend=backend)[1]),
            ("gd_svd", lambda A: fastlr.gd_svd(A, 3, max_iter=3000, tol=1e-15, random_state=0,
                                               backend=backend)[1]),
            ("gd_svd_nonzero", lambda A: fastlr.gd_svd(A, 3, mask="nonzero", max_iter=20, random_state=0,
                                                       backend=backend)[1]),
            ("spectral_norm", fastlr.datasets.spectral_norm),
        ]:
            got, expected = call(M), call(C)
            scale = max(np.abs(expected).max(), 1.0)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * scale, err_msg=f"{name} {fmt}")


def test_absurd_sizes_fail_at_once_with_a_clean_exception():
    """Outputs of petabytes or terabytes: a MemoryError (or ValueError) in well under a second,
    never an attempt to fill the memory. Under a 4 GiB address-space limit, in a subprocess."""
    code = textwrap.dedent('''
        import json, resource, time
        import numpy as np, scipy.sparse as sp, fastlr
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, resource.RLIM_INFINITY))
        wide = np.ones((10, 10**5))
        cases = {
            "CountSketch(2**31) @ wide": lambda b: fastlr.CountSketch(2**31, 10).apply(wide, backend=b),
            "CountSketch(2**31) @ wide csr": lambda b: fastlr.CountSketch(2**31, 10).apply(sp.csr_matrix(wide),
                                                                                           backend=b),
            "CountSketch(2**32) @ A": lambda b: fastlr.CountSketch(2**32, 10).apply(wide[:, :10**4], backend=b),
            "GaussianSketch(10**6, 10**6)": lambda b: fastlr.GaussianSketch(10**6, 10**6),
            "GaussianSketch(10**10, 10)": lambda b: fastlr.GaussianSketch(10**10, 10),
            # construction is O(1) (the hash runs inside S @ A); its rows are what cannot fit
            "CountSketch(10, 10**13).rows": lambda b: fastlr.CountSketch(10, 10**13).rows,
            "scw with CountSketch(2**31)": lambda b: fastlr.scw(wide, fastlr.CountSketch(2**31, 10), 2, backend=b),
            # transpose=False: "auto" would factor wide.T, whose 10 columns cap the oversampling harmlessly
            "randomized_svd n_oversamples=2**40": lambda b: fastlr.randomized_svd(wide, 5, n_oversamples=2**40,
                                                                                  transpose=False, backend=b),
            "learn_sketch m=2**31": lambda b: fastlr.learn_sketch([wide], 2**31, 2, steps=1, progress=False,
                                                                  backend=b),
            "gd_svd 10**12 x 10**12": lambda b: fastlr.gd_svd(sp.csr_matrix((10**12, 10**12)), 2, backend=b),
        }
        out = {}
        for backend in fastlr.available_backends():
            fastlr.CountSketch(3, 10).apply(np.ones((10, 2)), backend=backend)  # compile (numba) first
            for name, call in cases.items():
                start = time.perf_counter()
                try:
                    call(backend)
                    kind = "ok"
                except Exception as exc:
                    kind = type(exc).__name__
                out[backend + ": " + name] = [kind, time.perf_counter() - start]
        print(json.dumps(out))
    ''')
    res = run_python(code)
    assert res.returncode == 0, (res.returncode, res.stderr[-3000:])
    for case, (kind, seconds) in json.loads(res.stdout.strip().splitlines()[-1]).items():
        assert kind in ("MemoryError", "ValueError"), (case, kind)
        assert seconds < 2.0, (case, seconds)


# --------------------------------------------------------------------------- one table of bad arguments

_G = np.random.default_rng(0).standard_normal((20, 8))
_S = fastlr.CountSketch(5, 20)


def _with(value, at=(3, 2)):
    A = _G.copy()
    A[at] = value
    return A


#: Every public entry point, called on one argument (the matrix A or the option being tested).
_TAKES_A = {
    "CountSketch.apply": lambda A: _S.apply(A),
    "CountSketch.apply.numba": lambda A: _S.apply(A, backend="numba"),
    "GaussianSketch.apply": lambda A: fastlr.GaussianSketch(5, 20).apply(A),
    "stack.apply": lambda A: fastlr.stack([fastlr.CountSketch(3, 20), fastlr.GaussianSketch(3, 20)]).apply(A),
    "gather_dot": lambda A: _S.gather_dot(A, np.ones((5, 8))),
    "scw": lambda A: fastlr.scw(A, _S, 2),
    "randomized_svd": lambda A: fastlr.randomized_svd(A, 2, random_state=0),
    "randomized_svd.countsketch": lambda A: fastlr.randomized_svd(A, 2, sketch="countsketch", random_state=0),
    "learn_sketch": lambda A: fastlr.learn_sketch([A], 5, 2, steps=1, progress=False),
    "sketch_error": lambda A: fastlr.sketch_error(_S, [A], 2),
    "gd_svd": lambda A: fastlr.gd_svd(A, 2, max_iter=3, random_state=0),
    "LowRank.error": lambda A: fastlr.scw(_G, _S, 2).error(A),
    "normalize": lambda A: fastlr.datasets.normalize(A),
    "spectral_norm": lambda A: fastlr.datasets.spectral_norm(A),
}
#: The name each entry point gives the matrix in its messages.
_A_NAME = {"learn_sketch": "train[0]", "sketch_error": "matrices[0]"}

#: (bad matrix, exception, message fragment after "<name>: "); entries that compute
#: on zero columns (S @ A is m x 0) are exempt from the "empty" rows below.
_BAD_MATRICES = {
    "1-D": (_G[:, 0], ValueError, "expected a 2-D array"),
    "3-D": (_G[:, :, None], ValueError, "expected a 2-D array"),
    "0-D": (np.float64(1.0), ValueError, "expected a 2-D array"),
    "complex": (_G.astype(complex), TypeError, "complex dtype"),
    "complex csr": (sp.csr_matrix(_G.astype(complex)), TypeError, "complex dtype"),
    "object": (_G.astype(object), TypeError, "dtype object"),
    "str array": (_G.astype(str), TypeError, "dtype <U"),
    "str": ("A", TypeError, "expected a 2-D array"),
    "None": (None, TypeError, "expected a 2-D array"),
    "ragged list": ([[1.0, 2.0], [3.0]], TypeError, "cannot convert"),
    "nan": (_with(np.nan), ValueError, "contains NaN or infinity"),
    "inf": (_with(np.inf), ValueError, "contains NaN or infinity"),
    "-inf f32": (_with(-np.inf).astype(np.float32), ValueError, "contains NaN or infinity"),
    "nan csr": (sp.csr_matrix(_with(np.nan)), ValueError, "contains NaN or infinity"),
    "inf csc": (sp.csc_matrix(_with(np.inf, (19, 7))), ValueError, "contains NaN or infinity"),
    "0 rows": (np.zeros((0, 8)), ValueError, ""),
    "0 columns": (np.zeros((20, 0)), ValueError, "expected a non-empty matrix"),
    "0 columns csr": (sp.csr_matrix((20, 0)), ValueError, "expected a non-empty matrix"),
}
_ZERO_COLUMNS_OK = {"CountSketch.apply", "CountSketch.apply.numba", "GaussianSketch.apply", "stack.apply",
                    "gather_dot", "spectral_norm"}


def _bad_matrix_cases():
    for entry in _TAKES_A:
        for what, (A, exc, fragment) in _BAD_MATRICES.items():
            if entry in _ZERO_COLUMNS_OK and "0 columns" in what:
                continue
            if entry == "spectral_norm" and what == "0 rows":
                continue  # sigma_1 of an empty matrix is 0.0 (documented by a test of datasets)
            if entry in _TAKES_BATCHES and what == "3-D":
                continue  # a 3-D array is a batch of matrices there (tests/test_batch.py); 4-D is refused below
            if entry == "LowRank.error" and what.startswith("0 "):
                fragment = "expected shape"
            yield pytest.param(entry, A, exc, fragment, id=f"{entry}-{what}")


#: Entry points that take a batch (a 3-D array or a list of matrices of one shape).
_TAKES_BATCHES = {"scw", "randomized_svd", "randomized_svd.countsketch"}


@pytest.mark.parametrize("entry", sorted(_TAKES_BATCHES))
def test_batch_entry_points_refuse_4d_arrays(entry):
    with pytest.raises(ValueError, match=r"expected a 2-D array"):
        _TAKES_A[entry](_G[:, :, None, None])


@pytest.mark.parametrize("entry, A, exc, fragment", list(_bad_matrix_cases()))
def test_bad_matrices_are_clean_errors_naming_the_argument(entry, A, exc, fragment):
    require_backend("numba") if entry.endswith("numba") else None
    with pytest.raises(exc) as info:
        _TAKES_A[entry](A)
    message = str(info.value)
    assert message.startswith(_A_NAME.get(entry, "A") + ": "), message
    assert fragment in message, message


@pytest.mark.parametrize("entry", sorted(_TAKES_A))
@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.uint16, np.bool_, np.float16, ">f8"])
def test_other_real_dtypes_are_computed_in_float64(entry, dtype):
    """Documented: "float32 stays float32; other real dtypes compute in float64" (also float16)."""
    A = (_G * 3).astype(dtype) if dtype != np.bool_ else _G > 0
    got = _parts(_TAKES_A[entry](A))
    expected = _parts(_TAKES_A[entry](np.asarray(A, dtype=np.float64)))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        if isinstance(g, np.ndarray):
            assert g.dtype == np.float64, (entry, g.dtype)
        np.testing.assert_array_equal(g, e)


def _parts(result):
    """A result as a list of arrays or numbers (a LearnedSketch by its values, a LowRank as a matrix)."""
    if isinstance(result, fastlr.CountSketch):
        return [result.values]
    if isinstance(result, LowRank):
        return [result.to_dense()]
    return list(result) if isinstance(result, tuple) else [result]


_M = sp.random(20, 8, density=0.5, format="csr", random_state=0)

#: (call, exception, message start): options of the wrong type or out of range.
_BAD_OPTIONS = {
    "CountSketch m=0": (lambda: fastlr.CountSketch(0, 20), ValueError, "m: must be >= 1"),
    "CountSketch m='5'": (lambda: fastlr.CountSketch("5", 20), TypeError, "m: expected an integer"),
    "CountSketch m=5.0": (lambda: fastlr.CountSketch(5.0, 20), TypeError, "m: expected an integer"),
    "CountSketch n=0": (lambda: fastlr.CountSketch(5, 0), ValueError, "n: must be >= 1"),
    "CountSketch seed=None": (lambda: fastlr.CountSketch(5, 20, seed=None), TypeError, "seed: expected an integer"),
    "GaussianSketch m=2.5": (lambda: fastlr.GaussianSketch(2.5, 20), TypeError, "m: expected an integer"),
    "GaussianSketch n='x'": (lambda: fastlr.GaussianSketch(5, "x"), TypeError, "n: expected an integer"),
    "apply backend=3": (lambda: _S.apply(_G, backend=3), ValueError, "backend: unknown backend"),
    "apply rows mismatch": (lambda: _S.apply(_G[:10]), ValueError, "A: has 10 rows"),
    "stack [S, 1]": (lambda: fastlr.stack([_S, 1]), TypeError, "sketches[1]: expected a fastlr sketch"),
    "gather_dot D shape": (lambda: _S.gather_dot(_G, np.ones((5, 3))), ValueError, "D: expected shape"),
    "gather_dot D str": (lambda: _S.gather_dot(_G, "x"), TypeError, "D: expected a real numeric array"),
    "gather_dot D complex": (lambda: _S.gather_dot(_G, np.ones((5, 8), complex)), TypeError, "D: complex"),
    "values complex": (lambda: setattr(fastlr.CountSketch(2, 3), "values", np.ones(3, complex)), TypeError,
                       "values: complex"),
    "from_arrays values str": (lambda: fastlr.CountSketch.from_arrays([0, 1], ["a", "b"], 2), TypeError,
                               "values: dtype <U"),
    "S.T @ complex": (lambda: _S.T @ np.ones((5, 2), complex), TypeError, "Y: complex"),
    "S.T @ str": (lambda: _S.T @ "Y", TypeError, "Y: expected a real numeric array"),
    "S.T @ 3-D": (lambda: _S.T @ np.ones((5, 2, 2)), ValueError, "Y: expected 5 rows"),
    "scw k=0": (lambda: fastlr.scw(_G, _S, 0), ValueError, "k: must be >= 1"),
    "scw k > min(shape)": (lambda: fastlr.scw(_G, fastlr.CountSketch(10, 20), 9), ValueError, "k: must be <="),
    "scw k > m": (lambda: fastlr.scw(_G, _S, 6), ValueError, "S: has m=5 rows, fewer than k=6"),
    "scw k='2'": (lambda: fastlr.scw(_G, _S, "2"), TypeError, "k: expected an integer"),
    "scw k=2.0": (lambda: fastlr.scw(_G, _S, 2.0), TypeError, "k: expected an integer"),
    "scw S=ndarray": (lambda: fastlr.scw(_G, _S.to_dense(), 2), TypeError, "S: expected a fastlr sketch"),
    "scw S wrong n": (lambda: fastlr.scw(_G, fastlr.CountSketch(5, 21), 2), ValueError, "S: has n=21"),
    "scw n_iter=1.5": (lambda: fastlr.scw(_G, _S, 2, n_iter=1.5), TypeError, "n_iter: expected an integer"),
    "scw n_iter=-1": (lambda: fastlr.scw(_G, _S, 2, n_iter=-1), ValueError, "n_iter: must be >= 0"),
    "scw check_finite='no'": (lambda: fastlr.scw(_G, _S, 2, check_finite="no"), TypeError, "check_finite: expected"),
    "rsvd n_components=0": (lambda: fastlr.randomized_svd(_G, 0), ValueError, "n_components: must be >= 1"),
    "rsvd n_components='2'": (lambda: fastlr.randomized_svd(_G, "2"), TypeError, "n_components: expected"),
    "rsvd n_iter=1.5": (lambda: fastlr.randomized_svd(_G, 2, n_iter=1.5), TypeError, "n_iter: expected an integer"),
    "rsvd n_iter='x'": (lambda: fastlr.randomized_svd(_G, 2, n_iter="x"), TypeError, "n_iter: expected an integer"),
    "rsvd n_oversamples=-1": (lambda: fastlr.randomized_svd(_G, 2, n_oversamples=-1), ValueError, "n_oversamples:"),
    "rsvd sketch=None": (lambda: fastlr.randomized_svd(_G, 2, sketch=None), ValueError, "sketch: must be one of"),
    "rsvd random_state='a'": (lambda: fastlr.randomized_svd(_G, 2, random_state="a"), TypeError, "random_state:"),
    "rsvd random_state=-1": (lambda: fastlr.randomized_svd(_G, 2, random_state=-1), ValueError, "random_state:"),
    "rsvd flip_sign=1": (lambda: fastlr.randomized_svd(_G, 2, flip_sign=1), TypeError, "flip_sign: expected a bool"),
    "rsvd check_finite='x'": (lambda: fastlr.randomized_svd(_G, 2, check_finite="x"), TypeError, "check_finite:"),
    "rsvd normalizer='x'": (lambda: fastlr.randomized_svd(_G, 2, power_iteration_normalizer="x"), ValueError,
                            "power_iteration_normalizer:"),
    "learn m=0": (lambda: fastlr.learn_sketch([_G], 0, 2, steps=1, progress=False), ValueError, "m: must be >= 1"),
    "learn m=2**40": (lambda: fastlr.learn_sketch([_G], 2**40, 2, steps=1, progress=False), ValueError, "m: must"),
    "learn k > m": (lambda: fastlr.learn_sketch([_G], 5, 6, steps=1, progress=False), ValueError, "k: must be <= m"),
    "learn k > d": (lambda: fastlr.learn_sketch([_G], 10, 9, steps=1, progress=False), ValueError, "k: must be <="),
    "learn steps=1.5": (lambda: fastlr.learn_sketch([_G], 5, 2, steps=1.5, progress=False), TypeError, "steps:"),
    "learn steps='1'": (lambda: fastlr.learn_sketch([_G], 5, 2, steps="1", progress=False), TypeError, "steps:"),
    "learn lr='x'": (lambda: fastlr.learn_sketch([_G], 5, 2, steps=1, lr="x", progress=False), ValueError, "lr:"),
    "learn power_iters=1.5": (lambda: fastlr.learn_sketch([_G], 5, 2, steps=1, gradient="power", power_iters=1.5,
                                                          progress=False), TypeError, "power_iters:"),
    "learn mixed=True": (lambda: fastlr.learn_sketch([_G], 5, 2, steps=1, mixed=True, progress=False), ValueError,
                         "mixed:"),
    "learn train=A": (lambda: fastlr.learn_sketch(_G, 5, 2, steps=1, progress=False), TypeError, "train:"),
    "learn val shape": (lambda: fastlr.learn_sketch([_G], 5, 2, steps=1, val=[_G[:, :5]], progress=False),
                        ValueError, "val[0]: has shape"),
    "sketch_error k=0": (lambda: fastlr.sketch_error(_S, [_G], 0), ValueError, "k: must be >= 1"),
    "sketch_error k='2'": (lambda: fastlr.sketch_error(_S, [_G], "2"), TypeError, "k: expected an integer"),
    "sketch_error S=None": (lambda: fastlr.sketch_error(None, [_G], 2), TypeError, "S: expected a fastlr sketch"),
    "gd k=0": (lambda: fastlr.gd_svd(_G, 0), ValueError, "k: must be >= 1"),
    "gd k=9": (lambda: fastlr.gd_svd(_G, 9), ValueError, "k: must be <= min"),
    "gd k=2.0": (lambda: fastlr.gd_svd(_G, 2.0), TypeError, "k: expected an integer"),
    "gd max_iter=1.5": (lambda: fastlr.gd_svd(_G, 2, max_iter=1.5), TypeError, "max_iter: expected an integer"),
    "gd max_iter='5'": (lambda: fastlr.gd_svd(_G, 2, max_iter="5"), TypeError, "max_iter: expected an integer"),
    "gd tol='x'": (lambda: fastlr.gd_svd(_G, 2, tol="x"), TypeError, "tol: expected a number"),
    "gd lr=inf": (lambda: fastlr.gd_svd(_G, 2, lr=float("inf")), ValueError, "lr: must be finite"),
    "gd optimizer=1": (lambda: fastlr.gd_svd(_G, 2, optimizer=1), ValueError, "optimizer: must be one of"),
    "gd batch_size=2.5": (lambda: fastlr.gd_svd(_G, 2, optimizer="sgd", batch_size=2.5), TypeError, "batch_size:"),
    "gd mask float": (lambda: fastlr.gd_svd(_G, 2, mask=np.ones((20, 8))), TypeError, "mask: expected a boolean"),
    "gd mask shape": (lambda: fastlr.gd_svd(_G, 2, mask=np.ones(20, bool)), ValueError, "mask: expected shape"),
    "gd mask='x'": (lambda: fastlr.gd_svd(_M, 2, mask="x"), ValueError, "mask: unknown value"),
    "gd random_state='x'": (lambda: fastlr.gd_svd(_G, 2, random_state="x"), TypeError, "random_state: expected"),
    "gd random_state=1.5": (lambda: fastlr.gd_svd(_G, 2, random_state=1.5), TypeError, "random_state: expected"),
    "gd random_state=-1": (lambda: fastlr.gd_svd(_G, 2, random_state=-1), ValueError, "random_state: expected"),
    "gd optimizer_options=1": (lambda: fastlr.gd_svd(_G, 2, optimizer_options=1), TypeError,
                               "optimizer_options: expected a dict"),
    "gd progress='x'": (lambda: fastlr.gd_svd(_G, 2, progress="x"), TypeError, "progress: expected a bool"),
    "gd return_history='x'": (lambda: fastlr.gd_svd(_G, 2, return_history="x"), TypeError, "return_history:"),
    "gd callback=1": (lambda: fastlr.gd_svd(_G, 2, callback=1), TypeError, "callback: expected a callable"),
    "TruncatedSVD backend='x'": (lambda: __import__("fastlr.estimators").estimators.TruncatedSVD(
        2, backend="x").fit(_G), ValueError, "backend: unknown backend"),
    "set_num_threads('2')": (lambda: fastlr.set_num_threads("2"), TypeError, "n: number of threads"),
    "use_backend(1)": (lambda: fastlr.use_backend(1).__enter__(), ValueError, "backend: unknown backend"),
    "load_sketch(1)": (lambda: fastlr.load_sketch(1), TypeError, "path: expected a file name"),
}


@pytest.mark.parametrize("case", sorted(_BAD_OPTIONS))
def test_bad_options_are_clean_errors_naming_the_argument(case):
    call, exc, start = _BAD_OPTIONS[case]
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc or case.startswith("TruncatedSVD"), (case, type(info.value))
    assert str(info.value).startswith(start), (case, str(info.value))


# --------------------------------------------------------------------------- masked arrays


@pytest.mark.parametrize("call", [
    lambda A: fastlr.randomized_svd(A, 3, random_state=0),
    lambda A: fastlr.scw(A, 3, fastlr.CountSketch(12, A.shape[0], seed=0)),
    lambda A: fastlr.svd_to_tolerance(A, 0.1),
])
def test_masked_entries_are_never_silently_ignored(call):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 25))
    masked = np.ma.masked_array(A, rng.random(A.shape) < 0.2)
    with pytest.raises(TypeError, match=r"^A: a masked array with masked entries"):
        call(masked)
    # Without masked entries a MaskedArray is its data.
    _, s, _ = fastlr.randomized_svd(np.ma.masked_array(A), 3, random_state=0)
    np.testing.assert_array_equal(s, fastlr.randomized_svd(A, 3, random_state=0)[1])


def test_gd_svd_takes_masked_entries_as_missing():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((50, 4)) @ rng.standard_normal((4, 30))
    hidden = rng.random(A.shape) < 0.3
    masked = np.ma.masked_array(A.copy(), hidden)
    masked.data[hidden] = 1e6  # whatever sits under the mask must not matter
    before = masked.data.copy()
    U, s, Vt = fastlr.gd_svd(masked, 4, random_state=0, max_iter=3000)
    U2, s2, Vt2 = fastlr.gd_svd(np.where(hidden, np.nan, A), 4, mask=~hidden, random_state=0,
                                max_iter=3000)
    np.testing.assert_allclose(s, s2, rtol=1e-12)
    assert np.linalg.norm((U * s) @ Vt - A) <= 1e-6 * np.linalg.norm(A)  # completed exactly
    np.testing.assert_array_equal(masked.data, before)
