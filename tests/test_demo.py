"""fastlr.demo: the quick run trains, evaluates and reports learned sketches beating random ones."""

import io

import pytest

from fastlr import demo


@pytest.fixture(scope="module")
def quick_run():
    out = io.StringIO()
    results = demo.run(quick=True, quiet=True, out=out)
    return results, out.getvalue()


def test_quick_demo_table(quick_run):
    results, text = quick_run
    assert [r.name for r in results] == ["video", "hyperspectral", "text"]
    for method in demo.METHODS:
        assert method in text
    assert "optimal error" in text and "learned / random Err" in text
    for r in results:
        assert set(r.err) == set(demo.METHODS) and r.optimal > 0
        random_err = r.err["Random CountSketch"]
        assert 0 < r.err["Learned"] < 0.7 * random_err
        assert r.err["Mixed (J)"] < random_err and r.err["Mixed (S)"] < random_err
        assert f"{r.err['Learned']:.4f}" in text
        assert all(r.train_seconds[m] > 0 for m in ("Learned", "Mixed (J)", "Mixed (S)"))
    # text uses few of its rows: the dense subspace falls back to the random CountSketch itself, whose heaviest rows
    # get buckets of their own at apply time (heavy_rows="auto", learn_sketch's rule): below the plain one's Err
    counts = results[2]
    assert counts.err["Subspace (dense)"] < 0.7 * counts.err["Random CountSketch"]
    assert results[0].err["Subspace (dense)"] < results[0].err["Random CountSketch"]
    # learn_sketch's heavy_rows="auto": frames and bands are returned plain (the same sketch with and without);
    # text's frequent words get buckets of their own at apply time, which lowers its Err
    for r in results[:2]:
        assert r.err["Learned, no heavy rows"] == r.err["Learned"]
    assert counts.err["Learned"] < counts.err["Learned, no heavy rows"]


def test_quick_demo_plot(quick_run, tmp_path):
    pytest.importorskip("matplotlib")
    results, _ = quick_run
    path = tmp_path / "demo.png"
    demo._plot(path, results)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "demo.svg"  # the format still follows the extension
    demo._plot(svg, results)
    assert b"<svg" in svg.read_bytes()[:1000]


def test_interrupted_plot_leaves_the_old_file(quick_run, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def half_then_interrupt(self, f, **kwargs):
        f.write(b"half a plot")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", half_then_interrupt)
    path = tmp_path / "demo.png"
    path.write_bytes(b"old plot")
    with pytest.raises(KeyboardInterrupt):
        demo._plot(path, quick_run[0])
    assert path.read_bytes() == b"old plot"
    assert [p.name for p in tmp_path.iterdir()] == ["demo.png"]


def test_plot_folder_checked_before_the_work(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(FileNotFoundError, match="--plot"):
        demo.run(quick=True, quiet=True, plot=tmp_path / "absent" / "demo.png", out=io.StringIO())


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("tty, quiet, bars", [(True, False, True), (False, False, False), (True, True, False)])
def test_progress_bars_only_on_a_terminal(tty, quiet, bars, monkeypatch):
    """Bars redraw a line with carriage returns: drawn when stderr is a terminal and the run is not quiet,
    never into a redirected log (one line per bar, thousands of updates long)."""
    seen = []

    def stop(*args, progress=False, **kwargs):
        seen.append(progress)
        raise KeyboardInterrupt  # the first training call is all this test needs

    monkeypatch.setattr(demo, "learn_sketch", stop)
    monkeypatch.setattr(demo.sys, "stderr", _Stream(tty))
    with pytest.raises(KeyboardInterrupt):
        demo._run_family(demo._families(True)[0], quiet, lambda line: None)
    assert seen == (["video: Learned"] if bars else [False])
    assert demo._is_terminal(object()) is False  # no isatty: not a terminal
