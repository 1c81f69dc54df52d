"""Sphinx configuration for the skflow documentation.

Build locally (from the repository root)::

    pip install ".[docs]"
    sphinx-build docs docs/_build/html                      # runs the gallery examples
    sphinx-build -W -D plot_gallery=0 docs docs/_build/html  # fast: gallery pages without running

The test suite (tests/test_docs.py) builds with ``-W -D plot_gallery=0``: it runs every example
itself, so the docs build does not run them a second time.
"""

from __future__ import annotations

import os
import re

import skflow

project = "skflow"
author = "skflow developers"
copyright = "skflow developers"
version = release = skflow.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb"]

# API reference: one generated page per public name, from the templates in _templates/
# (estimator.rst also lists the methods inherited from scikit-learn, such as get_params).
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"  # the numpydoc Parameters sections already give the types
numpydoc_show_class_members = False  # the templates (_templates/) list the members
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
}
# The docs build must work offline (CI machines and the test suite have no network): intersphinx
# inventories are fetched only when asked for.
if not os.environ.get("SKFLOW_DOCS_INTERSPHINX"):
    intersphinx_mapping = {}

# The gallery: only examples/plot_*.py (examples/quickstart.py is the README's first command and
# stays a plain script). ``-D plot_gallery=0`` renders the pages without running the scripts.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"quickstart\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    # "Examples using this class" on each API page (the minigallery directive in the template).
    "doc_module": ("skflow",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"skflow": None},
}

html_theme = "pydata_sphinx_theme"
html_title = f"skflow {release}"
html_static_path = ["_static"]
html_theme_options = {
    "github_url": "",
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}


# Docstrings write shapes the scikit-learn way, "ndarray of shape (n_features_in_,)"; in reST a
# word ending in "_" is a link target, so escape that underscore before numpydoc parses the text.
_SHAPE_NAME = re.compile(r"\b([A-Za-z]\w*)_(?=[,)])")


def _escape_shape_names(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if "shape (" in line:
            lines[i] = _SHAPE_NAME.sub(r"\1\\_", line)


# Methods inherited from scikit-learn (get_params, set_output, set_fit_request, ...) link to
# labels and glossary terms of scikit-learn's own docs, which this build cannot resolve offline:
# keep their text, drop the link.
_SPHINX_ROLE = re.compile(r":(?:ref|term|class|func|meth|attr|obj):`~?([^`<]*?)\s*(?:<[^>]*>)?`")


def _unlink_sklearn_roles(app, what, name, obj, options, lines):
    if getattr(obj, "__module__", "").startswith("sklearn."):
        lines[:] = [_SPHINX_ROLE.sub(r"\1", line) for line in lines]


def setup(app):
    # numpydoc reformats docstrings at the default priority (500); run before it.
    app.connect("autodoc-process-docstring", _escape_shape_names, priority=400)
    app.connect("autodoc-process-docstring", _unlink_sklearn_roles, priority=400)
