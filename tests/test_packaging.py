"""What the installed package exposes: version, typing marker, ``python -m fastlr``."""

import importlib.metadata
import importlib.resources
import sys

from helpers import run_outside_tree

import fastlr


def test_version_matches_the_installed_metadata():
    assert fastlr.__version__ == importlib.metadata.version("fastlr")
    assert fastlr.__version__[0].isdigit()


def test_py_typed_marker_is_installed():
    assert importlib.resources.files("fastlr").joinpath("py.typed").is_file()


def test_python_dash_m_is_the_fastlr_command():
    out = run_outside_tree([sys.executable, "-m", "fastlr", "--version"])  # in an empty directory
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"fastlr {fastlr.__version__}"


def test_console_script_is_declared():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    (entry,) = [ep for ep in scripts if ep.name == "fastlr"]
    assert entry.value == "fastlr.cli:main"
