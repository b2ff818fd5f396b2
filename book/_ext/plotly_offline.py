"""Sphinx extension: serve plotly.js from the book itself, so figures need no network.

Figures in the executed notebooks carry HTML that calls ``Plotly.newPlot`` (see
``lic_teach.plots``); this extension adds ``_static/plotly.min.js`` to every page and
copies it there from the installed ``plotly`` package, whose version thereby matches
the one that made the figures.
"""
from pathlib import Path
import shutil

import plotly

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _copy_plotly_js(app, exception):
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PLOTLY_JS, static / "plotly.min.js")


def setup(app):
    if not PLOTLY_JS.is_file():
        raise RuntimeError(f"plotly.min.js not found at {PLOTLY_JS}; reinstall plotly")
    # Load plotly.js before any require.js (myst-nb adds one to pages whose notebooks hold
    # widget state): under require.js, plotly.js defines an AMD module and no window.Plotly.
    app.add_js_file("plotly.min.js", priority=200)
    app.connect("build-finished", _copy_plotly_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
