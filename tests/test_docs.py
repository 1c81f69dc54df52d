"""The documentation is part of the product: every gallery example runs, the Sphinx site builds
with warnings as errors, and the Examples sections of the docstrings pass as doctests."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import os
import pkgutil
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import skflow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))
# Each example is meant to take well under a minute on a slow CPU; the limit leaves room for a
# busy CI machine while still catching a script that hangs.
EXAMPLE_TIMEOUT_S = 300
MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(skflow.__path__, prefix="skflow."))


def test_there_are_gallery_examples():
    assert len(EXAMPLES) >= 7, [path.name for path in EXAMPLES]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(path, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    # Run as the gallery runs it, then count the figures it left open (with Agg, plt.show()
    # keeps them): an example that silently drew nothing fails.
    runner = (
        "import runpy, sys, matplotlib.pyplot as plt; "
        "runpy.run_path(sys.argv[1], run_name='__main__'); "
        "print('FIGURES', len(plt.get_fignums()))"
    )
    # From a scratch directory, so an example that writes files does not litter the checkout.
    result = subprocess.run(
        [sys.executable, "-c", runner, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_S,
    )
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout}\n{result.stderr}"
    n_figures = int(result.stdout.rsplit("FIGURES", 1)[1])
    assert n_figures >= 1, f"{path.name} drew no figure"


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    """The numpydoc Examples sections run as doctests (they fit tiny flows)."""
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [test for test in finder.find(mod, module) if test.examples]
    with warnings.catch_warnings():
        # The examples stop after a few epochs on purpose; ConvergenceWarning says so.
        warnings.simplefilter("ignore")
        for test in tests:
            runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} doctest(s) failed in {module} (see output)"


def test_public_classes_have_doctested_examples():
    for name in skflow.__all__:
        obj = getattr(skflow, name)
        if isinstance(obj, type):
            assert ">>> " in (obj.__doc__ or ""), f"{name} has no Examples section"


def _sphinx_runs() -> bool:
    """Whether ``python -m sphinx`` can run (some images ship a partial sphinx package)."""
    return (
        importlib.util.find_spec("sphinx") is not None
        and importlib.util.find_spec("sphinx.__main__") is not None
    )


@pytest.mark.skipif(
    not _sphinx_runs(),
    reason="sphinx is not installed (pip install '.[docs]' or '.[test]')",
)
def test_sphinx_build_without_warnings(tmp_path):
    """``sphinx-build -W``; the gallery pages are generated without running the scripts
    (``plot_gallery=0``), since test_example_runs runs them already."""
    docs = ROOT / "docs"
    # Build from a copy so that the generated pages (API stubs, gallery) never touch the checkout.
    source = tmp_path / "docs"
    shutil.copytree(
        docs,
        source,
        ignore=shutil.ignore_patterns("_build", "generated", "auto_examples", "gen_modules"),
    )
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-D",
            "plot_gallery=0",
            str(source),
            str(tmp_path / "html"),
        ],
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    html = tmp_path / "html"
    for page in [
        "index",
        "getting_started",
        "user_guide",
        "api",
        "benchmarks",
        "auto_examples/index",
        "generated/skflow.FlowDensity",
    ]:
        assert (html / f"{page}.html").exists(), page
    for example in EXAMPLES:
        assert (html / "auto_examples" / f"{example.stem}.html").exists(), example.name
