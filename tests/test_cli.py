"""The command line, driven as a user would (subprocess)."""

import json
import tempfile
import subprocess
import sys


def fastlr_cli(*args, timeout=600):
    # Run outside the source tree so the installed package (with _core) is the one imported.
    return subprocess.run(
        [sys.executable, "-m", "fastlr", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),
    )


def test_info():
    out = fastlr_cli("info")
    assert out.returncode == 0, out.stderr
    assert "backend cpp" in out.stdout and "threads:" in out.stdout
    info = json.loads(fastlr_cli("info", "--json").stdout)
    assert info["default_backend"] == "cpp"
    assert info["build"]["openmp"] in (True, False)


def test_demo_quick():
    out = fastlr_cli("demo", "--quick")
    assert out.returncode == 0, out.stderr
    assert "fastlr cpp" in out.stdout and "scipy" in out.stdout


def test_user_errors_are_one_line():
    for args in (["--threads", "0", "info"], ["--backend", "gpu", "info"], ["nonsense"]):
        out = fastlr_cli(*args)
        assert out.returncode == 2
        assert "Traceback" not in out.stderr
        assert out.stderr.strip()
