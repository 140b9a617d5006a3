"""The dense product choice's calibration (fastlr/_matrix/calibration.py): thresholds from injected
timings, the cache and its key, the environment, and what ``fastlr info`` / ``fastlr calibrate``
report. Nothing here times anything: the probes are fakes."""

import json
import os
import sys

import numpy as np
import pytest
from helpers import run_outside_tree, subprocess_env

from fastlr import cli
from fastlr._matrix import InMemory, calibration, choice, memory

# (kernel, BLAS) times of three rounds: the kernel wins, noise, BLAS wins
K, Q, B = [(1.0, 1.2), (1.0, 1.25), (1.1, 1.3)], [(1.0, 1.2), (1.0, 0.99), (1.0, 1.3)], [(1.2, 1.0), (1.3, 1.0), (1.3, 1.1)]


def _dispatching():
    try:
        from fastlr import _core
    except ImportError:
        return False
    return _core.build_info().get("isa") in choice.LEVELS


needs_dispatch = pytest.mark.skipif(not _dispatching(), reason="the calibration measures the dispatching C++ core")


def fake_probes(calls=None):
    """C-order kernels win up to 192 columns, F-order ones lose at every width."""
    def make(cell):
        def probe(w):
            if calls is not None:
                calls.append((cell, w))
            return K if cell[0] == "C" else B
        return probe
    return {cell: make(cell) for cell in calibration.CELLS}


# (swapped, NumPy's layout) times of three rounds: swapped wins, noise, NumPy's layout wins
S, N = [(1.0, 1.05), (1.1, 1.09), (1.0, 1.2)], [(1.0, 0.98), (1.0, 0.9), (1.1, 1.0)]


def fake_layout_probe(calls=None, wins=lambda w: w % 8 in (0, 1)):
    """BLAS ``A.T @ W`` layouts: swapped faster at widths 0 and 1 mod 8 (``wins``), NumPy's elsewhere."""
    def probe(w):
        if calls is not None:
            calls.append(w)
        return S if wins(w) else N
    return probe


def flipped(level):
    """The route decisions the fake probes give at ``level``: each the opposite of its rule there, so that a
    decision taken from the rule instead of the calibration shows."""
    return {"vector": level not in choice.VECTOR_LEVELS, "narrow": level not in choice.NARROW_LEVELS,
            "one_stream": level not in choice.ONE_STREAM_LEVELS}


def _ratio_of(rounds) -> str:
    """``fastlr calibrate``'s other / fastlr's best time of the rounds."""
    fastlr_time, other = calibration.best_times(rounds)
    return f"{other / fastlr_time:.2f}"


def fake_decision_probes(decisions, calls=None):
    """``{name: probe}``: fastlr's route faster (K) where ``decisions[name]``, the other (B) elsewhere."""
    def make(name):
        def probe():
            if calls is not None:
                calls.append(name)
            return K if decisions[name] else B
        return probe
    return {name: make(name) for name in calibration.DECISIONS}


def expected(static):
    """C order up to 193 columns; F order down to 8 for passes, the table's threshold for "gram" (never lowered)."""
    return {c: 193 if c[0] == "C" else static[c] if c[1] == "gram" else min(static[c], 8) for c in calibration.CELLS}


@pytest.fixture
def calibrating(monkeypatch, tmp_path):
    """Calibration on, a fresh cache directory, fake timings; yields the list of calibration runs."""
    monkeypatch.setenv("FASTLR_CALIBRATION", "auto")
    monkeypatch.setenv("FASTLR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE", raising=False)
    monkeypatch.setattr(choice, "_level", None)
    runs = []

    def timed(core, rounds, tall=False, matrix=None):
        if not tall:  # one run: the resident A's probes, then those past L3
            runs.append(rounds)
        return fake_probes()

    monkeypatch.setattr(calibration, "_timed_probes", timed)
    monkeypatch.setattr(calibration, "_layout_probe", lambda rounds: fake_layout_probe())
    monkeypatch.setattr(calibration, "decision_probes",
                        lambda core, rounds, thresholds, matrix=None: fake_decision_probes(flipped(choice.isa_level())))
    calibration.reset()
    yield runs
    calibration.reset()


def test_verdict():
    assert calibration.verdict(K) == "K" and calibration.verdict(B) == "B"
    assert calibration.verdict(Q) == "?"  # BLAS faster in one round
    assert calibration.verdict([(1.0, 1.09), (1.2, 1.25)]) == "K"  # best times 1.0 and 1.09
    assert calibration.verdict([(1.0, 1.07), (1.0, 1.5)]) == "?"  # best times 7% apart
    assert calibration.verdict([(1.09, 1.0), (1.2, 1.1)]) == "B"
    assert calibration.verdict([]) == "?"


def probe_from(verdicts, calls):
    def probe(w):
        calls.append(w)
        return verdicts(w)
    return probe


def test_scan_raises_the_threshold_past_decisive_wins():
    calls = []
    threshold, ratios = calibration.scan(40, probe_from(lambda w: K if w <= 96 else Q, calls))
    assert threshold == 97 and calls == [48, 64, 96, 128] and list(ratios) == calls


def test_scan_lowers_it_to_the_narrowest_decisive_loss():
    calls = []
    threshold, _ = calibration.scan(128, probe_from(lambda w: Q if w >= 128 else B if w >= 32 else K, calls))
    assert threshold == 32 and calls == [128, 96, 64, 48, 32, 16]


def test_scan_keeps_the_table_on_noise():
    calls = []
    assert calibration.scan(40, probe_from(lambda w: Q, calls))[0] == 40 and calls == [48, 32]
    calls.clear()
    assert calibration.scan(0, probe_from(lambda w: B, calls))[0] == 0 and calls == [8]
    calls.clear()  # a loss at one width below the table's threshold: the table's threshold
    assert calibration.scan(64, probe_from(lambda w: B if w == 48 else Q, calls))[0] == 64 and calls == [64, 48, 32]
    calls.clear()  # a loss at the table's threshold and a win below it: the table's threshold
    assert calibration.scan(64, probe_from(lambda w: B if w >= 64 else K, calls))[0] == 64 and calls == [64, 48]


def test_scan_lower_false_never_goes_below_the_table():
    calls = []
    threshold, _ = calibration.scan(64, probe_from(lambda w: B, calls), lower=False)
    assert threshold == 64 and calls == [64]
    calls.clear()
    assert calibration.scan(40, probe_from(lambda w: K, calls), lower=False)[0] == 193 and calls == [48, 64, 96, 128, 192]


def test_measure_never_lowers_a_gram_threshold():
    static = choice.static_thresholds("x86-64-v4")
    tab = calibration.measure(static, {cell: probe_from(lambda w: B, []) for cell in calibration.CELLS}, "x86-64-v4")
    for (order, kind, dtype), columns in tab.thresholds.items():
        want = static[order, kind, dtype] if kind == "gram" or static[order, kind, dtype] <= 8 else 8
        assert columns == want, (order, kind, dtype, columns, want)
    assert tab.thresholds["F", "gram", "float64"] == 64 and tab.thresholds["C", "pass", "float64"] == 8


def test_measure_keeps_the_table_for_a_failed_cell():
    static = choice.static_thresholds("x86-64-v3")
    probes = fake_probes()

    def broken(w):
        raise MemoryError("no room")

    probes["C", "gram", "float64"] = broken
    tab = calibration.measure(static, probes, "x86-64-v3")
    want = expected(static)
    want["C", "gram", "float64"] = static["C", "gram", "float64"]
    assert tab.thresholds == want and tab.source == "measured"
    assert tab.cells["C gram float64"]["status"] == "failed (MemoryError: no room)"
    assert tab.cells["C pass float32"]["times"]["192"] == [[k * 1e3, b * 1e3] for k, b in K]


@needs_dispatch
def test_cache_round_trip(calibrating, tmp_path):
    level = choice.isa_level()
    static = choice.static_thresholds(level)
    first = calibration.calibrate(static, level)
    assert first.source == "measured" and first.thresholds == expected(static) and calibrating == [calibration.ROUNDS]
    assert os.path.dirname(first.path) == str(tmp_path / "cache")
    with open(first.path) as f:
        stored = json.load(f)
    assert stored["key"]["level"] == level and stored["key"]["blas"] and stored["key"]["cpu"]
    assert stored["thresholds"]["C pass float32"] == 193
    again = calibration.calibrate(static, level)
    assert again.source == "cache" and again.thresholds == first.thresholds and len(calibrating) == 1
    assert calibration.calibrate(static, level, force=True).source == "measured" and len(calibrating) == 2


@needs_dispatch
def test_another_key_or_a_damaged_file_measures_again(calibrating, monkeypatch):
    level = choice.isa_level()
    static = choice.static_thresholds(level)
    path = calibration.calibrate(static, level).path
    monkeypatch.setattr(calibration, "METHOD", calibration.METHOD + 1)  # e.g. another BLAS core type
    other = calibration.calibrate(static, level)
    assert other.source == "measured" and other.path != path and len(calibrating) == 2
    assert len(os.listdir(os.path.dirname(path))) == 2
    with open(other.path, "w") as f:
        f.write("{not json")
    assert calibration.calibrate(static, level).source == "measured" and len(calibrating) == 3
    assert calibration.calibrate(static, level).source == "cache"


@needs_dispatch
def test_use_kernel_follows_the_calibration(calibrating, monkeypatch):
    level = choice.isa_level()
    assert choice.use_kernel("pass", 150, np.float32, "C")  # the table: BLAS from 128 columns
    assert not choice.use_kernel("pass", 193, np.float32, "C")
    assert not choice.use_kernel("pass", 150, np.float32, "C", threads=2)  # calibrated at one thread
    assert choice.use_kernel("pass", 100, np.float32, "C", threads=2)
    assert choice.thresholds() == expected(choice.static_thresholds(level)) and len(calibrating) == 1
    assert not choice.use_kernel("pass", 150, np.float32, "C", level)  # a level given: the table's rule
    monkeypatch.setattr(choice, "_level", level)  # pinned: the table's rule
    assert not choice.use_kernel("pass", 150, np.float32, "C")
    monkeypatch.setattr(choice, "_level", None)
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")
    assert not choice.use_kernel("pass", 10, np.float32, "C")
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "auto")
    monkeypatch.setenv("FASTLR_CALIBRATION", "off")
    assert not choice.use_kernel("pass", 150, np.float32, "C")
    assert choice.thresholds() == choice.static_thresholds(level) and len(calibrating) == 1


@needs_dispatch
def test_products_agree_under_the_calibrated_route(calibrating):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((300, 200)).astype(np.float32)
    V = rng.standard_normal((200, 150)).astype(np.float32)
    got = InMemory(A).times(V)  # 150 columns: the kernel under the fake calibration
    assert len(calibrating) == 1
    np.testing.assert_allclose(got, A.astype(np.float64) @ V, rtol=1e-4, atol=1e-3)


def test_environment_values(monkeypatch, tmp_path):
    for value, mode in (("", "auto"), ("auto", "auto"), (" OFF ", "off")):
        monkeypatch.setenv("FASTLR_CALIBRATION", value)
        assert calibration.mode() == mode
    monkeypatch.setenv("FASTLR_CALIBRATION", "maybe")
    with pytest.raises(ValueError, match="FASTLR_CALIBRATION: unknown value 'maybe'; choose one of auto, off"):
        calibration.mode()
    monkeypatch.setattr(choice, "_level", None)
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE", raising=False)
    if _dispatching():
        with pytest.raises(ValueError, match="FASTLR_CALIBRATION"):
            choice.use_kernel("pass", 10, np.float64, "C")
        assert "invalid (FASTLR_CALIBRATION" in choice.describe()
    monkeypatch.setenv("FASTLR_CACHE_DIR", str(tmp_path / "here"))
    assert calibration.cache_dir() == str(tmp_path / "here")
    monkeypatch.setenv("FASTLR_CACHE_DIR", "")
    assert "fastlr" in calibration.cache_dir()


@needs_dispatch
def test_unwritable_cache_calibrates_in_memory(calibrating, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would go")
    monkeypatch.setenv("FASTLR_CACHE_DIR", str(blocker / "cache"))
    calibration.reset()
    with pytest.warns(RuntimeWarning, match="cache not written"):
        assert choice.use_kernel("pass", 150, np.float32, "C")
    assert choice.use_kernel("pass", 150, np.float32, "C") and len(calibrating) == 1  # no second warning
    assert "measured on this machine (cache in memory)" in choice.describe()


@needs_dispatch
def test_describe(calibrating, monkeypatch):
    monkeypatch.setenv("FASTLR_CALIBRATION", "off")
    assert "the static table (FASTLR_CALIBRATION=off)" in choice.describe()
    monkeypatch.setenv("FASTLR_CALIBRATION", "auto")
    assert "until calibrated" in choice.describe() and calibrating == []  # describe never measures
    choice.thresholds()
    text = choice.describe()
    assert "measured on this machine (cache " in text and "C-order A < 193 columns" in text
    monkeypatch.setattr(choice, "_level", choice.isa_level())
    assert "the static table:" in choice.describe()


@needs_dispatch
def test_cli_calibrate_and_info(calibrating, capsys, tmp_path):
    assert cli.main(["calibrate"]) == 0
    out = capsys.readouterr().out
    assert f"dense products at {choice.isa_level()}: measured" in out and str(tmp_path / "cache") in out
    assert "C pass float32" in out and "-> 193" in out and "now: auto at" in out
    want = flipped(choice.isa_level())
    for name in calibration.DECISIONS:  # the route decisions, with the fake probes' other / fastlr's time
        said = f"  {name}: {calibration.DECISIONS[name]}: {'yes' if want[name] else 'no'}   other / fastlr's time "
        assert said + f"{_ratio_of(B if not want[name] else K)} (" in out
    assert cli.main(["calibrate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "cache"
    assert cli.main(["calibrate", "--force", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"] == "measured" and info["thresholds"]["C gram float32"] == 193 and len(calibrating) == 2
    # another process reads this machine's cache
    env = subprocess_env(FASTLR_CALIBRATION="auto", FASTLR_CACHE_DIR=str(tmp_path / "cache"))
    out = run_outside_tree([sys.executable, "-m", "fastlr", "info"], env=env)
    assert out.returncode == 0, out.stderr
    assert "measured on this machine" in out.stdout and "< 193 columns" in out.stdout


def test_new_cache_file_prunes_the_least_recently_used(calibrating, tmp_path):
    directory = tmp_path / "cache"
    directory.mkdir()
    stale = []
    for i in range(calibration.KEEP_FILES + 4):  # older keys: other builds, BLAS versions, ...
        path = directory / f"product-choice-{i:016x}.json"
        path.write_text("{}")
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
        stale.append(path)
    other = directory / "notes.txt"  # not a calibration file: never touched
    other.write_text("mine")
    os.utime(other, (1, 1))
    level = choice.isa_level()
    static = choice.static_thresholds(level)
    written = calibration.calibrate(static, level)
    assert written.source == "measured" and os.path.exists(written.path)
    left = sorted(p for p in os.listdir(directory) if p.startswith("product-choice-"))
    assert len(left) == calibration.KEEP_FILES
    # the newest stale files stay, the oldest five went (the new file took one place)
    assert left == sorted([os.path.basename(written.path)] + [p.name for p in stale[5:]])
    assert other.read_text() == "mine"
    # reading a file marks it used: after a load it is the newest, so the next prune keeps it
    os.utime(written.path, (1, 1))
    calibration.reset()
    assert calibration.calibrate(static, level).source == "cache"
    assert os.path.getmtime(written.path) > 1_000_000 + 100


def test_scan_times_widths_below_the_table_with_lower_probe():
    """``scan(..., lower_probe=)``: widths from the table's threshold up go to ``probe``, those below it to
    ``lower_probe`` (``measure``'s A past L3)."""
    up, down = [], []
    threshold, times = calibration.scan(40, probe_from(lambda w: B, up), lower_probe=probe_from(lambda w: K, down))
    assert up == [48] and down == [32] and threshold == 40 and list(times) == [48, 32]
    up.clear(), down.clear()
    threshold, _ = calibration.scan(40, probe_from(lambda w: B, up), lower_probe=probe_from(lambda w: B, down))
    assert up == [48] and down == [32, 16, 8] and threshold == 8


def test_measure_lowers_a_pass_threshold_only_on_losses_past_l3():
    """An A that fits in L3 (the 1040 x 1080 probe) showed C-order float32 A V + A^T W losing at 32 and 48
    columns on a Zen 2 where 5760 x 1080 won 1.18-1.71x: below the table's threshold ``measure`` follows
    ``lower_probes`` (A past L3), and keeps the table where those win."""
    static = choice.static_thresholds("x86-64-v3")
    resident = {cell: probe_from(lambda w: B, []) for cell in calibration.CELLS}
    past_l3 = {cell: probe_from(lambda w: K, []) for cell in calibration.CELLS}
    assert calibration.measure(static, resident, "x86-64-v3", past_l3).thresholds == static
    lowered = calibration.measure(static, resident, "x86-64-v3").thresholds  # without them: the resident A's losses
    assert lowered["C", "pass", "float32"] == 8 and lowered["C", "gram", "float32"] == static["C", "gram", "float32"]


def test_tall_rows_pass_l3():
    """The calibration's A below the table's thresholds: twice L3 in bytes, capped at TALL_BYTES, never fewer rows
    than SHAPE's."""
    n, d = calibration.SHAPE
    assert calibration.tall_rows("float32", 16 << 20) == (32 << 20) // (4 * d)
    assert calibration.tall_rows("float64", 16 << 20) == (32 << 20) // (8 * d)
    assert calibration.tall_rows("float64", 1 << 30) == calibration.TALL_BYTES // (8 * d)
    assert calibration.tall_rows("float32", 1 << 20) == n
    assert calibration.tall_rows("float32", 16 << 20) * 4 * d > 16 << 20


def test_tall_probes_run_on_an_a_past_l3(monkeypatch):
    """``_timed_probes(..., tall=True)``: each cell's A (C and F order) has ``tall_rows`` rows, made at its first
    probe only; without ``tall``, SHAPE. A recording core stands in for the kernels (nothing is judged)."""
    seen = []

    class Core:
        def matmul(self, A, V):
            seen.append((A.shape, A.dtype.name, "C" if A.flags.c_contiguous else "F"))
            return A @ V

        def rmatmul(self, A, W):
            return A.T @ W

    l3 = 8 << 20
    monkeypatch.setattr(calibration, "read_cache_sizes", lambda: (1 << 19, l3))
    probes = calibration._timed_probes(Core(), 2, tall=True)
    assert seen == []
    out = probes["C", "pass", "float32"](4)
    assert len(out) == 2 and all(k >= 0 and b >= 0 for k, b in out)
    d = calibration.SHAPE[1]
    rows32, rows64 = calibration.tall_rows("float32", l3), calibration.tall_rows("float64", l3)
    assert rows32 * d * 4 > l3 and rows64 * d * 8 > l3
    probes["F", "pass", "float64"](4)
    assert set(seen) == {((rows32, d), "float32", "C"), ((rows64, d), "float64", "F")}
    seen.clear()
    calibration._timed_probes(Core(), 1)["C", "pass", "float64"](4)
    assert set(seen) == {(calibration.SHAPE, "float64", "C")}


def test_swapped_wins():
    """The swapped layout wins on best times 3% apart and in most rounds (not every round: its edge is small)."""
    assert calibration.swapped_wins(S) and not calibration.swapped_wins(N)
    assert not calibration.swapped_wins([(1.0, 1.02), (1.0, 1.02), (1.0, 1.02)])  # 2%: a tie
    assert not calibration.swapped_wins([(1.0, 1.2), (1.1, 1.0), (1.1, 1.0)])  # faster in one round of three
    assert not calibration.swapped_wins([])


def test_measure_layouts_swaps_only_residues_won_twice():
    """Each residue mod 8 at 48 + r, and only where the swapped layout won there, again at 56 + r."""
    calls = []
    swapped, times = calibration.measure_layouts(fake_layout_probe(calls))
    assert swapped == {0, 1} and calls == [48, 56, 49, 57, 50, 51, 52, 53, 54, 55] and set(times) == set(calls)
    # won at 48 + r but not at 56 + r: NumPy's layout
    swapped, _ = calibration.measure_layouts(fake_layout_probe(wins=lambda w: w % 8 == 1 or w in (50, 51)))
    assert swapped == {1}
    assert calibration.measure_layouts(fake_layout_probe(wins=lambda w: False))[0] == frozenset()


@needs_dispatch
def test_layouts_are_measured_cached_and_followed(calibrating, monkeypatch):
    """The calibration stores the residues, the cache keeps them, ``choice.blas_swap`` and InMemory's BLAS route
    follow them (float64 from LAYOUT_MIN_COLUMNS on); no layouts (calibration off, an older file): None,
    ``blas_times``'s own rule."""
    level = choice.isa_level()
    static = choice.static_thresholds(level)
    first = calibration.calibrate(static, level)
    assert first.layouts == {"float64": {0, 1}} and first.cells["layout float64"]["swapped"] == [0, 1]
    again = calibration.calibrate(static, level)
    assert again.source == "cache" and again.layouts == {"float64": {0, 1}}
    deep = calibration.LAYOUT_SHAPE[0]
    assert choice.blas_swap(np.float64, 48, deep) is True and choice.blas_swap(np.float64, 57, 5760) is True
    assert choice.blas_swap(np.float64, 54, deep) is False and choice.blas_swap(np.float64, 44, deep) is False
    assert choice.blas_swap(np.float64, 48, deep - 1) is True  # shorter sums than measured: below 64 columns
    assert choice.blas_swap(np.float64, 64, deep - 1) is False and choice.blas_swap(np.float64, 64, deep) is True
    assert choice.blas_swap(np.float64, 4, deep) is None and choice.blas_swap(np.float32, 48, deep) is None
    assert "as (W^T A)^T at widths 0, 1 mod 8 (over sums shorter than" in choice.describe()
    seen = []
    real = memory.blas_product

    def spy(M, F, swapped):  # the layout the route resolved (blas_swapped: None is blas_times's rule, float64 swaps)
        seen.append(swapped)
        return real(M, F, swapped)

    monkeypatch.setattr(memory, "blas_product", spy)
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")
    monkeypatch.setattr(calibration, "LAYOUT_SHAPE", (90, 70))  # sums of 90 as deep as the calibration's
    rng = np.random.default_rng(2)
    A = rng.standard_normal((90, 70))
    op = InMemory(A)
    for w, swap in ((48, True), (54, False), (3, True)):  # 3: blas_swap None, blas_times's float64 rule
        W = rng.standard_normal((90, w))
        np.testing.assert_allclose(op.rtimes(W), A.T @ W, rtol=1e-10, atol=1e-10)  # sums of 90
        np.testing.assert_allclose(InMemory(np.asfortranarray(A)).times(W[:70]), A @ W[:70], rtol=1e-10, atol=1e-10)
        assert seen[-2:] == [swap, swap]  # F-order A @ V sums 70: below 64 columns as measured
    np.testing.assert_allclose(op.gram_product(W[:70]), A.T @ (A @ W[:70]), rtol=1e-10, atol=1e-10)
    W = rng.standard_normal((90, 64))
    np.testing.assert_allclose(InMemory(np.asfortranarray(A)).times(W[:70]), A @ W[:70], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(op.rtimes(W), A.T @ W, rtol=1e-10, atol=1e-10)
    assert seen[-2:] == [False, True]  # 64 columns over sums of 70 (F-order A @ V) and of 90
    with open(first.path) as f:
        data = json.load(f)
    del data["layouts"]
    with open(first.path, "w") as f:
        json.dump(data, f)
    calibration.reset()
    assert calibration.calibrate(static, level).layouts == {} and choice.blas_swap(np.float64, 48, 90) is None
    monkeypatch.setenv("FASTLR_CALIBRATION", "off")
    assert choice.blas_swap(np.float64, 48, 90) is None and "(W^T A)^T" not in choice.describe()


def test_interleaved_weights_each_callable_once_a_round(monkeypatch):
    """``_interleaved``: a path of ``(weight, callable)`` pairs calls each once a round (and once to warm up) and
    counts its time weight times; a plain callable counts once. A fake clock: each call advances it by its cost."""
    now, called = [0.0], []

    def unit(name, cost):
        def run():
            called.append(name)
            now[0] += cost
        return run

    monkeypatch.setattr(calibration.time, "thread_time", lambda: now[0])
    rounds = calibration._interleaved(([(3, unit("a", 1.0)), (1, unit("b", 2.0))], unit("c", 4.0)), 2)
    assert rounds == [(5.0, 4.0), (5.0, 4.0)]
    assert called == ["a", "b", "c"] + ["a", "b", "c"] + ["c", "a", "b"]  # warm-up, then the first alternating


def test_decide():
    """True where fastlr's route wins every round by MARGIN, False where the other does, left out (the rule) on
    noise or a failed probe; each cell keeps its verdict and times, or why it failed."""
    def broken():
        raise AttributeError("no vector_product")

    decisions, cells = calibration.decide({"vector": lambda: K, "narrow": lambda: B, "one_stream": lambda: K})
    assert decisions == {"vector": True, "narrow": False, "one_stream": True}
    assert cells["vector"]["verdict"] == "K" and cells["vector"]["times"] == [[k * 1e3, b * 1e3] for k, b in K]
    assert cells["narrow"]["seconds"] >= 0.0 and set(cells["narrow"]) == {"status", "verdict", "times", "seconds"}
    decisions, cells = calibration.decide({"vector": lambda: Q, "narrow": broken, "one_stream": lambda: []})
    assert decisions == {} and cells["vector"]["verdict"] == "?" and cells["one_stream"]["verdict"] == "?"
    assert cells["narrow"] == {"status": "failed (AttributeError: no vector_product)"}


@needs_dispatch
def test_decisions_are_measured_cached_followed_and_reported(calibrating, monkeypatch):
    """The route decisions: measured with the thresholds (once), kept in the cache file, followed by
    ``choice.vector_product`` and ``_krylov``'s narrow blocks, shown by describe(); the rule where calibration is
    off, a level is pinned or given, the file has none, or the probe was not decisive; FASTLR_PRODUCT_CHOICE
    overrides both."""
    krylov = sys.modules["fastlr._krylov"]
    level = choice.isa_level()
    rule, want = ({"vector": level in choice.VECTOR_LEVELS, "narrow": level in choice.NARROW_LEVELS,
                   "one_stream": level in choice.ONE_STREAM_LEVELS}, flipped(level))
    static = choice.static_thresholds(level)
    first = calibration.calibrate(static, level)
    assert first.decisions == want and first.cells["narrow"]["verdict"] == ("K" if want["narrow"] else "B")
    with open(first.path) as f:
        assert json.load(f)["decisions"] == want
    calibration.reset()
    again = calibration.calibrate(static, level)
    assert again.source == "cache" and again.decisions == want and len(calibrating) == 1

    dense = InMemory(np.zeros((3000, 2000), dtype=np.float32))
    tile = krylov._V3_TILE_BYTES // 4

    def routes():
        return {"vector": choice.vector_product(1, 1, dtype=np.float64, order="C") is not None,
                "narrow": krylov._narrow_tile(dense) == tile, "one_stream": one_stream()}

    def one_stream():  # the flag the one-column route passes (with the column passes forced on to see it)
        with monkeypatch.context() as m:
            m.setattr(choice, "decided", lambda name, rule, level=None: True if name == "vector" else decided(
                name, rule, level))
            return choice.vector_product(1, 1, dtype=np.float64, order="C").keywords["one_stream"]

    decided = choice.decided

    calibration.reset()
    assert {name: choice.decided(name, getattr(choice, f"{name.upper()}_LEVELS")) for name in want} == want
    assert routes() == want and len(calibrating) == 1  # from the cache
    text = choice.describe()
    assert f"{'fastlr' if want['vector'] else 'BLAS'}'s one-column products on one thread (measured;" in text
    blocks = "in tile-wide blocks where they pay" if want["narrow"] else "in l-wide blocks"
    assert f"Krylov finder {blocks} (measured)" in text
    assert choice.decided("vector", choice.VECTOR_LEVELS, level) == rule["vector"]  # a level given: the rule
    monkeypatch.setattr(choice, "_level", level)  # pinned: the rule
    assert routes() == rule and "(VECTOR_LEVELS;" in choice.describe() and "(NARROW_LEVELS)" in choice.describe()
    monkeypatch.setattr(choice, "_level", None)
    monkeypatch.setenv("FASTLR_CALIBRATION", "off")
    assert routes() == rule
    monkeypatch.setenv("FASTLR_CALIBRATION", "auto")
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")  # BLAS's GEMVs, and no fused kernel for narrow blocks
    assert choice.vector_product(1, 1, dtype=np.float64, order="C") is None
    assert krylov.krylov_block(dense, 10, 20, 7) == (20, 4)
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE")
    with open(first.path) as f:  # an older file without decisions: the rule
        data = json.load(f)
    del data["decisions"]
    with open(first.path, "w") as f:
        json.dump(data, f)
    calibration.reset()
    assert calibration.calibrate(static, level).decisions == {} and routes() == rule
    monkeypatch.setattr(calibration, "decision_probes", lambda core, rounds, thresholds, matrix=None: {
        name: (lambda: Q) for name in calibration.DECISIONS})  # not decisive: the rule
    tab = calibration.calibrate(static, level, force=True)
    assert tab.decisions == {} and tab.cells["vector"]["verdict"] == "?"
    calibration.reset()
    assert routes() == rule


def test_narrow_cases_are_krylov_blocks_on_5760x1080(monkeypatch):
    """``calibration.NARROW_CASES`` are what ``_krylov.krylov_block`` runs on 5760 x 1080 at n_iter = 7 where the
    narrow rules apply (pinned at x86-64-v4) and where they do not (baseline): blocks of NARROW_BLOCK columns, so
    many passes, against l-wide blocks krylov_depth(7) deep or the Gram route."""
    krylov = sys.modules["fastlr._krylov"]
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE", raising=False)
    for dtype, l, narrow, other in calibration.NARROW_CASES:
        op = InMemory(np.zeros((5760, 1080), dtype=dtype))
        monkeypatch.setattr(choice, "_level", "x86-64-v4")
        assert krylov.krylov_block(op, l - 10, l, 7) == (calibration.NARROW_BLOCK, narrow)
        monkeypatch.setattr(choice, "_level", "baseline")  # the other route
        if other is None:
            assert op._gram_pays(l, 7) and not krylov.krylov_applies(op, l, 7)
        else:
            assert krylov.krylov_block(op, l - 10, l, 7) == (l, other) and krylov.krylov_applies(op, l, 7)


def test_decision_probes_time_the_routes_they_compare():
    """``decision_probes``: "vector" runs each one-column kind on C- and F-order A of both dtypes, against NumPy;
    "narrow" the fused pass on NARROW_BLOCK columns and the route's own products at l (the kernel below the
    thresholds, BLAS from them). A recording core stands in for the kernels (nothing is judged)."""
    seen = []

    class Core:
        level = 2

        def vector_product(self, kind, A, F1, F2=None, one_stream=None):
            if one_stream is None:
                seen.append(("vector", kind, A.dtype.name, "C" if A.flags.c_contiguous else "F"))
            else:
                seen.append(("one_stream", kind, A.dtype.name, A.nbytes >= 16 << 20, one_stream))
            return None  # not used

        def _kernel_isa(self):
            return self.level

        def power_step(self, A, V):
            seen.append(("power_step", V.shape[1], A.dtype.name))
            return A @ V, A.T @ (A @ V)

        def matmul(self, A, V):
            seen.append(("matmul", V.shape[1], A.dtype.name))
            return A @ V

    thresholds = {cell: 0 for cell in calibration.CELLS}
    thresholds["C", "gram", "float64"] = thresholds["C", "pass", "float32"] = 64  # kernels for these below 64
    probes = calibration.decision_probes(Core(), 1, thresholds)
    assert len(probes["vector"]()) == 1
    assert set(seen) == {("vector", kind, t, o) for kind in range(4) for t in ("float32", "float64") for o in "CF"}
    seen.clear()
    assert len(calibration.decision_probes(Core(), 1, thresholds)["narrow"]()) == 1
    assert set(seen) == {("power_step", 16, "float32"), ("power_step", 16, "float64"), ("power_step", 20, "float64"),
                         ("matmul", 16, "float32"), ("matmul", 20, "float32"), ("matmul", 60, "float32")}
    seen.clear()  # "one_stream": A @ v and A.T @ w on A past 16 MiB, one row at a time and in blocks
    assert len(calibration.decision_probes(Core(), 1, thresholds)["one_stream"]()) == 1
    assert set(seen) == {("one_stream", kind, t, True, flag) for kind in (0, 1) for t in ("float32", "float64")
                         for flag in (True, False)}
    seen.clear()
    Core.level = 0  # the baseline: nothing to decide
    assert calibration.decision_probes(Core(), 1, thresholds)["one_stream"]() == [] and seen == []
