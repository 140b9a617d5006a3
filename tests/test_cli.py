"""The command line, driven as a user would (subprocess, from outside the source tree)."""

import json
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import SUBPROCESS_TIMEOUT, run_many_outside_tree, run_outside_tree

import fastlr


def _command(args):
    return [sys.executable, "-m", "fastlr", *map(str, args)]


def fastlr_cli(*args, timeout=SUBPROCESS_TIMEOUT):
    # In an empty directory, so the installed package (with _core) is the one imported.
    return run_outside_tree(_command(args), timeout=timeout)


def fastlr_cli_many(arg_lists, timeout=SUBPROCESS_TIMEOUT):
    """Run several commands at once (each one is mostly interpreter start-up)."""
    return run_many_outside_tree([_command(a) for a in arg_lists], timeout=timeout)


def _family(count, n=200, d=30, rank=4, seed=0):
    """Matrices sharing a column space (what a learned sketch exploits), plus noise."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((n, rank)))[0]
    scales = 2.0 ** -np.arange(rank)[:, None]
    return [basis @ (scales * rng.standard_normal((rank, d))) + 0.01 * rng.standard_normal((n, d))
            for _ in range(count)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = _family(12)
    for name, part in (("train", data[:8]), ("test", data[8:])):
        (root / name).mkdir()
        for i, A in enumerate(part):
            np.save(root / name / f"{i:02d}.npy", A)
    return root, data[8:]


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_info():
    out = fastlr_cli("info")
    assert out.returncode == 0, out.stderr
    assert "backend cpp" in out.stdout and "threads:" in out.stdout and "vector ISA" in out.stdout
    info = json.loads(fastlr_cli("info", "--json").stdout)
    assert info["default_backend"] == "cpp"
    assert info["build"]["openmp"] in (True, False)
    assert f"vector ISA {info['build']['isa']}" in out.stdout


def test_global_options_before_and_after_the_command():
    before, after = fastlr_cli_many([["--threads", "1", "--backend", "numpy", "info", "--json"],
                                     ["info", "--json", "--threads", "1", "--backend", "numba"]])
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    before, after = json.loads(before.stdout), json.loads(after.stdout)
    assert before["threads"] == after["threads"] == 1
    assert (before["default_backend"], after["default_backend"]) == ("numpy", "numba")


def test_demo_is_wired_to_fastlr_demo(tmp_path):
    # The quick run itself is tested in-process (tests/test_demo.py); here: the command reaches it.
    helped, bad_plot = fastlr_cli_many([["demo", "--help"],
                                        ["demo", "--quick", "--plot", tmp_path / "absent" / "demo.png"]])
    assert helped.returncode == 0 and "--quick" in helped.stdout and "--plot" in helped.stdout
    assert bad_plot.returncode == 2 and "Traceback" not in bad_plot.stderr
    assert len(bad_plot.stderr.strip().splitlines()) == 1 and "--plot" in bad_plot.stderr


def test_train_then_eval(folders, tmp_path):
    root, test = folders
    sketch, curves, bars = tmp_path / "s.npz", tmp_path / "curves.png", tmp_path / "errors.png"
    out = fastlr_cli("train", root / "train", "-m", 8, "-k", 3, "-o", sketch, "--steps", 60,
                     "--val", root / "test", "--plot", curves, "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # --quiet: no progress bar
    result = json.loads(out.stdout)
    assert (result["matrices"], result["shape"], result["m"], result["k"]) == (8, [200, 30], 8, 3)
    assert result["val_err_last"] < result["val_err_first"]
    S = fastlr.load_sketch(sketch)
    assert S.shape == (8, 200) and S.k == 3
    assert _is_png(curves)

    out = fastlr_cli("eval", sketch, root / "test", "--json", "--plot", bars)
    assert out.returncode == 0, out.stderr
    rows = {r["sketch"]: r for r in json.loads(out.stdout)["rows"]}
    learned, random = rows["sketch (s.npz)"], rows["random CountSketch"]
    np.testing.assert_allclose(learned["err"], fastlr.sketch_error(S, test, 3), rtol=1e-6)
    np.testing.assert_allclose(random["err"], fastlr.sketch_error(fastlr.CountSketch(8, 200, seed=0), test, 3),
                               rtol=1e-6)
    assert learned["err"] < random["err"]
    assert rows["optimum (truncated SVD)"]["err"] == 0.0
    assert _is_png(bars)

    text = fastlr_cli("eval", sketch, root / "test", "-k", 2)
    assert text.returncode == 0, text.stderr
    assert "random CountSketch" in text.stdout and "k = 2" in text.stdout


def test_train_from_learned_positions(folders, tmp_path):
    root, test = folders
    out = fastlr_cli("train", root / "train", "-m", 8, "-k", 3, "-o", tmp_path / "s.npz", "--steps", 20,
                     "--init", "inner_product", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["init"] == "inner_product" and isinstance(result["fallback"], bool)
    S = fastlr.load_sketch(tmp_path / "s.npz")
    random = fastlr.CountSketch(8, 200, seed=0)
    assert fastlr.sketch_error(S, test, 3, guard=False) < fastlr.sketch_error(random, test, 3)
    bad = fastlr_cli("train", root / "train", "-m", 8, "-k", 3, "-o", tmp_path / "t.npz", "--init", "best")
    assert bad.returncode == 2 and "--init" in bad.stderr


def test_train_reads_a_single_matrix_file_and_image_frames(tmp_path):
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(frames / f"{i}.png")
    np.save(tmp_path / "one.npy", _family(1)[0])
    from_frames, from_file = fastlr_cli_many([
        ["train", frames, "-m", 5, "-k", 2, "-o", tmp_path / "a.npz", "--steps", 5, "--json", "-q"],
        ["train", tmp_path / "one.npy", "-m", 5, "-k", 2, "-o", tmp_path / "b.npz", "--steps", 5, "--json", "-q"],
    ])
    assert from_frames.returncode == 0, from_frames.stderr
    assert json.loads(from_frames.stdout)["shape"] == [30, 12]  # 3 W x H per frame
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["matrices"] == 1


def test_train_reads_a_video(tmp_path):
    iio = pytest.importorskip("imageio.v3")
    frames = np.random.default_rng(2).integers(0, 256, (4, 16, 12, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "clip.gif", frames)
    out = fastlr_cli("train", tmp_path / "clip.gif", "-m", 6, "-k", 2, "-o", tmp_path / "v.npz", "--steps", 3,
                     "--json", "-q")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["matrices"] == 4 and result["shape"] == [36, 16]


def _svd_error(A, k):
    s = np.linalg.svd(A, compute_uv=False)
    return float(np.sqrt(np.sum(s[k:] ** 2) / np.sum(s**2))), s[:k]


def test_approx_chooses_the_rank_by_tolerance(tmp_path):
    rng = np.random.default_rng(3)
    A = (rng.standard_normal((300, 6)) * [10, 8, 6, 4, 2, 1]) @ rng.standard_normal((6, 40))
    A += 1e-3 * rng.standard_normal(A.shape)
    np.save(tmp_path / "A.npy", A)
    out = fastlr_cli("approx", tmp_path / "A.npy", "--tol", 0.05, "-o", tmp_path / "f.npz", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    s = np.linalg.svd(A, compute_uv=False)
    tail = np.sqrt(np.cumsum((s ** 2)[::-1])[::-1]) / np.linalg.norm(A)  # tail[r]: error of rank r
    assert result["k"] == int(np.argmax(tail < 0.05)) and result["tol"] == 0.05
    assert result["relative_error"] <= 0.05
    bad = fastlr_cli("approx", tmp_path / "A.npy", "--tol", 0.05, "--method", "gd", "-o", tmp_path / "g.npz")
    assert bad.returncode != 0 and "--tol" in bad.stderr
    neither = fastlr_cli("approx", tmp_path / "A.npy", "-o", tmp_path / "h.npz")
    assert neither.returncode != 0 and "--tol" in neither.stderr


def test_pca_of_a_sparse_and_a_dense_file(tmp_path):
    sklearn_decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(4)
    X = sp.csr_matrix(sp.random(400, 60, density=0.1, format="csr", random_state=4) @ sp.diags(np.logspace(0, -2, 60)))
    sp.save_npz(tmp_path / "X.npz", X)
    out = fastlr_cli("pca", tmp_path / "X.npz", "-n", 5, "-o", tmp_path / "p.npz", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["sparse"] and result["n_components"] == 5
    with np.load(tmp_path / "p.npz") as f:
        ref = sklearn_decomposition.PCA(5, svd_solver="full").fit(X.toarray())
        np.testing.assert_allclose(f["explained_variance"], ref.explained_variance_, rtol=1e-3)
        np.testing.assert_allclose(f["mean"], ref.mean_, atol=1e-12)
    D = rng.standard_normal((200, 8)) @ rng.standard_normal((8, 30))
    np.save(tmp_path / "D.npy", D)
    out = fastlr_cli("pca", tmp_path / "D.npy", "-n", 0.9, "-o", tmp_path / "q.npz", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["explained_variance_ratio"] >= 0.9
    bad = fastlr_cli("pca", tmp_path / "D.npy", "-n", 1.5, "-o", tmp_path / "r.npz")
    assert bad.returncode == 2 and "-n" in bad.stderr


def test_approx_every_method_and_format(tmp_path):
    A = _family(1, n=300, d=40)[0]
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "A8.npy", np.clip(A * 20 + 128, 0, 255).astype(np.uint8))  # read in row blocks
    sp.save_npz(tmp_path / "A.npz", sp.csr_matrix(A))
    np.savetxt(tmp_path / "A.csv", A, delimiter=",")
    S = fastlr.learn_sketch(_family(4, n=300, d=40, seed=0), 8, 3, steps=20, progress=False)
    S.save(tmp_path / "learned.npz")
    k = 3
    runs = {
        "randomized": ["approx", tmp_path / "A.npy", "-k", k, "-m", 20, "--n-iter", 1],
        "countsketch": ["approx", tmp_path / "A.npy", "-k", k, "--method", "countsketch", "-m", 20, "--n-iter", 1],
        "learned": ["approx", tmp_path / "A.npy", "-k", k, "--method", "learned", "--sketch", tmp_path / "learned.npz"],
        "gd": ["approx", tmp_path / "A.npy", "-k", k, "--method", "gd", "--seed", 1],
        "uint8": ["approx", tmp_path / "A8.npy", "-k", k],
        "sparse": ["approx", tmp_path / "A.npz", "-k", k],
        "csv": ["approx", tmp_path / "A.csv", "-k", k, "--plot", tmp_path / "s.png"],
    }
    outputs = {name: tmp_path / f"{name}.npz" for name in runs}
    results = fastlr_cli_many([[*args, "-o", outputs[name], "--json"] for name, args in runs.items()])
    for name, out in zip(runs, results):
        assert out.returncode == 0, (name, out.stderr)
        result = json.loads(out.stdout)
        assert result["output"] == str(outputs[name]) and result["method"] in (name, "randomized"), name
        with np.load(outputs[name]) as z:
            U, s, Vt = z["U"], z["s"], z["Vt"]
        assert U.shape == (300, k) and s.shape == (k,) and Vt.shape == (k, 40), name
        np.testing.assert_allclose(U.T @ U, np.eye(k), atol=1e-8)
        source = np.load(tmp_path / "A8.npy").astype(np.float64) if name == "uint8" else A
        optimal, top = _svd_error(source, k)
        residual = np.linalg.norm(source - (U * s) @ Vt) / np.linalg.norm(source)
        np.testing.assert_allclose(result["relative_error"], residual, rtol=1e-6)
        np.testing.assert_allclose(result["singular_values"], s, rtol=1e-12)
        assert residual < 1.1 * optimal + 1e-12, name  # a near-optimal rank-k approximation
        np.testing.assert_allclose(s, top, rtol=0.05)
    assert _is_png(tmp_path / "s.png")
    text = fastlr_cli("approx", tmp_path / "A.npy", "-k", 2, "-o", tmp_path / "t.npz")
    assert text.returncode == 0 and "relative error" in text.stdout, text.stderr


def _bad_inputs(tmp):
    """(arguments, text the one-line error must contain) for each user mistake."""
    np.save(tmp / "vector.npy", np.ones(5))
    np.save(tmp / "complex.npy", np.ones((4, 3), dtype=np.complex128))
    np.save(tmp / "A.npy", np.random.default_rng(0).standard_normal((40, 6)))
    np.save(tmp / "B.npy", np.random.default_rng(1).standard_normal((30, 6)))
    np.save(tmp / "objects.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    np.savez(tmp / "two.npz", X=np.ones((3, 3)), Y=np.ones((3, 3)))
    (tmp / "garbage.npy").write_bytes(b"not a numpy file at all")
    (tmp / "garbage.npz").write_bytes(b"not a zip file")
    (tmp / "garbage.mtx").write_text("hello\n")
    (tmp / "A.txt").write_text("1 2\n3 4\n")
    (tmp / "empty").mkdir()
    (tmp / "mixed").mkdir()
    np.save(tmp / "mixed" / "a.npy", np.ones((4, 3)))
    np.save(tmp / "mixed" / "b.npy", np.ones((5, 3)))
    sp.save_npz(tmp / "sparse.npz", sp.random(40, 6, density=0.3, random_state=0, format="csr"))
    fastlr.CountSketch(4, 50, seed=0).save(tmp / "sketch50.npz")
    A, out = tmp / "A.npy", tmp / "out.npz"
    return [
        (["approx", tmp / "missing.npy", "-k", 2, "-o", out], "missing.npy: no such file"),
        (["approx", tmp / "empty", "-k", 2, "-o", out], "is a folder"),
        (["approx", tmp / "garbage.npy", "-k", 2, "-o", out], "garbage.npy: not a .npy file"),
        (["approx", tmp / "garbage.npz", "-k", 2, "-o", out], "garbage.npz: not a .npz file"),
        (["approx", tmp / "garbage.mtx", "-k", 2, "-o", out], "garbage.mtx: cannot read"),
        (["approx", tmp / "objects.npy", "-k", 2, "-o", out], "objects.npy: cannot read"),
        (["approx", tmp / "two.npz", "-k", 2, "-o", out], "two.npz: holds arrays X, Y"),
        (["approx", tmp / "A.txt", "-k", 2, "-o", out], "unsupported format '.txt'"),
        (["approx", tmp / "vector.npy", "-k", 2, "-o", out], "vector.npy: expected a 2-D matrix, got shape (5,)"),
        (["approx", tmp / "complex.npy", "-k", 2, "-o", out], "expected real numbers"),
        (["approx", A, "-k", 7, "-o", out], "-k 7: larger than the smaller side"),
        (["approx", A, "-k", 2, "-m", 1, "-o", out], "-m: the sketch size must be >= k"),
        (["approx", A, "-k", 2, "-o", tmp / "nowhere" / "out.npz"], "does not exist"),
        (["approx", A, "-k", 2, "-o", out, "--method", "learned"], "--method learned needs --sketch"),
        (["approx", A, "-k", 2, "-o", out, "--method", "learned", "--sketch", tmp / "sketch50.npz"],
         "sketch50.npz: the sketch is for matrices with 50 rows, but"),
        (["approx", A, "-k", 2, "-o", out, "--method", "learned", "--sketch", A], "A.npy: not a fastlr sketch file"),
        (["train", tmp / "empty", "-m", 4, "-k", 2, "-o", out], "holds no"),
        (["train", tmp / "mixed", "-m", 4, "-k", 2, "-o", out], "has shape (5, 3)"),
        (["train", A, "-m", 4, "-k", 2, "-o", out, "--val", tmp / "B.npy", "--steps", 1],
         "B.npy: matrices of shape (30, 6), but the training matrices are (40, 6)"),
        (["eval", tmp / "sketch50.npz", A], "sketch50.npz: the sketch is for matrices with 50 rows"),
        (["--threads", 0, "info"], "argument --threads: expected a positive integer, got 0"),
        (["approx", A, "-k", 2, "-o", out, "--plot", tmp / "plot.unknownformat"], "plot.unknownformat"),
    ]


def test_user_mistakes_are_one_line_on_stderr(tmp_path):
    cases = _bad_inputs(tmp_path)
    results = fastlr_cli_many([args for args, _ in cases])
    for (args, expected), out in zip(cases, results):
        where = f"fastlr {' '.join(map(str, args))}"
        assert out.returncode == 2, (where, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, (where, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fastlr"), (where, out.stderr)
        assert expected in lines[0], (where, lines[0])
