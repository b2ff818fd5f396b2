"""Sphinx extension: the book serves its own scripts, so a page needs no network at all.

- plotly.js: figures in the executed notebooks carry HTML that calls ``Plotly.newPlot``
  (see ``lic_teach.plots``). This adds ``_static/plotly.min.js`` to every page, copied
  from the installed ``plotly`` package, whose version thereby matches the one that made
  the figures.
- MathJax 3 (3.2.2, from the ``sphinx-mathjax-offline`` package on PyPI): copied to
  ``_static/mathjax``, with Sphinx's ``mathjax_path`` pointed at its SVG output
  component, which draws glyphs as paths and so needs no web fonts (browsers restrict
  fonts loaded from ``file://`` pages).
"""

import shutil
from importlib import metadata
from pathlib import Path

import plotly

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
MATHJAX_COMPONENT = "tex-svg.js"


def mathjax_dir() -> Path:
    """Where ``sphinx-mathjax-offline`` keeps MathJax's files (its top-level folder has
    a hyphen in its name, so it is found through its metadata, not imported)."""
    try:
        distribution = metadata.distribution("sphinx-mathjax-offline")
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            "MathJax not found: install the book's dependencies "
            "(pip install -e '.[book]', or `make book`)"
        ) from None
    folder = Path(distribution.locate_file("sphinx-mathjax-offline/static/mathjax"))
    if not (folder / MATHJAX_COMPONENT).is_file():
        raise RuntimeError(
            f"{folder / MATHJAX_COMPONENT} is missing; reinstall sphinx-mathjax-offline"
        )
    return folder


def _use_local_mathjax(app, config):
    config.mathjax_path = f"mathjax/{MATHJAX_COMPONENT}"  # relative: under _static/


def _copy_assets(app, exception):
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PLOTLY_JS, static / "plotly.min.js")
        shutil.copytree(mathjax_dir(), static / "mathjax", dirs_exist_ok=True)


def setup(app):
    if not PLOTLY_JS.is_file():
        raise RuntimeError(f"plotly.min.js not found at {PLOTLY_JS}; reinstall plotly")
    mathjax_dir()  # fail at the start of a build, not at its end
    # Load plotly.js before any require.js a page might get: under require.js, plotly.js
    # defines an AMD module and no window.Plotly.
    app.add_js_file("plotly.min.js", priority=200)
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
