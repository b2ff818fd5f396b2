"""Plotly figures for the book: R-D curves, images side by side, sliders over images or
curves.

Importing this module selects a renderer that works in every place a chapter runs:
in JupyterLab and VS Code figures use plotly's own mime type; in the built HTML book
they use HTML that draws with the ``plotly.min.js`` the book serves from its own
``_static`` folder (no network needed); on Colab plotly's ``colab`` renderer is kept.
"""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer, PlotlyRenderer
from plotly.subplots import make_subplots

from .data import to_pil
from .metrics import bd_rate

RENDERER = "lic_teach"


class OfflineBookRenderer(MimetypeRenderer):
    """Both plotly's mime type (live notebooks) and ``text/html`` that expects
    ``window.Plotly`` to be loaded by the page (the book loads it from ``_static``)."""

    def to_mimebundle(self, fig_dict):
        bundle = PlotlyRenderer().to_mimebundle(fig_dict)
        bundle["text/html"] = pio.to_html(
            fig_dict,
            include_plotlyjs=False,
            include_mathjax=False,
            full_html=False,
            default_width="100%",
            default_height=fig_dict.get("layout", {}).get("height", 480),
            validate=False,
        )
        return bundle


def use_offline_renderer() -> str:
    """Make ``fig.show()`` (and a figure as a cell's value) render with this book's
    renderer, except on Colab, where plotly's ``colab`` renderer works already.
    Returns the name of the renderer in use."""
    pio.renderers[RENDERER] = OfflineBookRenderer()
    if "google.colab" not in sys.modules:
        pio.renderers.default = RENDERER
    return pio.renderers.default


use_offline_renderer()

# --------------------------------------------------------------------------- figures


def rd_figure(
    curves, metric: str = "psnr", title: str = "Rate-distortion", log_x: bool = False
) -> go.Figure:
    """Overlay R-D curves: bits per pixel against PSNR (dB) or MS-SSIM.

    ``curves`` is a list (or dict) of ``RDCurve``s; published curves (whose ``source``
    says so) are drawn dashed, so measured and cited results are never confused.
    """
    if metric not in ("psnr", "ms_ssim"):
        raise ValueError(f"metric must be 'psnr' or 'ms_ssim', got {metric!r}")
    curves = list(curves.values()) if isinstance(curves, Mapping) else list(curves)
    figure = go.Figure()
    for curve in curves:
        y = getattr(curve, metric)
        if not y:
            continue
        published = "published" in curve.source or "not measured" in curve.source
        figure.add_trace(
            go.Scatter(
                x=curve.bpp,
                y=y,
                name=curve.name,
                mode="lines+markers",
                line=dict(dash="dash" if published else "solid"),
                marker=dict(size=5 if published else 8),
                hovertemplate="%{x:.3f} bpp, %{y:.3f}<extra>" + curve.name + "</extra>",
            )
        )
    figure.update_layout(
        title=title,
        xaxis_title="bits per pixel",
        yaxis_title="PSNR (dB)" if metric == "psnr" else "MS-SSIM",
        legend=dict(orientation="h", y=-0.2),
        height=480,
    )
    if log_x:
        figure.update_xaxes(type="log")
    return figure


def bd_figure(
    anchor, test, quality: str = "PSNR (dB)", samples: int = 100
) -> go.Figure:
    """How a Bjøntegaard delta rate is computed (:func:`lic_teach.metrics.bd_rate`):
    each curve's points as log-rate against quality, its piecewise cubic (PCHIP)
    interpolant, and the gap between the two shaded over the quality range both cover,
    whose mean is the log of the rate ratio. Curves that ``bd_rate`` refuses raise its
    ``ValueError``."""
    from scipy.interpolate import PchipInterpolator  # scipy takes ~1 s to import

    bd_rate(anchor.bpp, anchor.psnr, test.bpp, test.psnr)
    low, high = (
        max(min(anchor.psnr), min(test.psnr)),
        min(max(anchor.psnr), max(test.psnr)),
    )
    grid = np.linspace(low, high, samples)
    figure = go.Figure()
    fits = []
    for curve, colour in ((anchor, "#1f77b4"), (test, "#d62728")):
        order = np.argsort(curve.psnr)
        q, r = np.asarray(curve.psnr)[order], np.log(np.asarray(curve.bpp)[order])
        fit = PchipInterpolator(q, r)
        fits.append(fit(grid))
        dense = np.linspace(q[0], q[-1], samples)
        figure.add_trace(
            go.Scatter(
                x=dense,
                y=fit(dense),
                mode="lines",
                line=dict(color=colour),
                name=f"{curve.name}: PCHIP fit",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=q,
                y=r,
                mode="markers",
                marker=dict(color=colour, size=8),
                name=f"{curve.name}: measured",
                showlegend=False,
            )
        )
    figure.add_trace(
        go.Scatter(
            x=np.concatenate([grid, grid[::-1]]),
            y=np.concatenate([fits[0], fits[1][::-1]]),
            fill="toself",
            fillcolor="rgba(120, 120, 120, 0.3)",
            line=dict(width=0),
            name="the gap averaged (common range)",
            hoverinfo="skip",
        )
    )
    for edge in (low, high):
        figure.add_vline(x=edge, line=dict(dash="dot", color="grey"))
    figure.update_layout(
        xaxis_title=quality,
        yaxis_title="ln(bits per pixel)",
        height=440,
        legend=dict(orientation="h", y=-0.25),
    )
    return figure


def image_source(x) -> str:
    """A ``[3, H, W]`` image as a PNG data URI (compact inside HTML and notebooks)."""
    buffer = io.BytesIO()
    to_pil(x).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(
        "ascii"
    )


def images_figure(
    images: Mapping, title: str | None = None, height: int = 380
) -> go.Figure:
    """Images side by side, ``{caption: [3, H, W] tensor}``, with zoom kept in sync."""
    if not images:
        raise ValueError("images_figure needs at least one image")
    figure = make_subplots(
        rows=1,
        cols=len(images),
        subplot_titles=list(images),
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.01,
    )
    for column, x in enumerate(images.values(), start=1):
        figure.add_trace(go.Image(source=image_source(x)), row=1, col=column)
    figure.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    figure.update_layout(
        title=title, height=height, margin=dict(l=10, r=10, t=60, b=10)
    )
    return figure


def image_slider_figure(
    frames: Mapping, title: str | None = None, height: int = 480, prefix: str = ""
) -> go.Figure:
    """One image at a time, chosen with a slider under it: ``{label: [3, H, W]
    tensor}``.

    It works in the static HTML book too (no kernel): every frame is embedded.
    """
    if not frames:
        raise ValueError("image_slider_figure needs at least one frame")
    labels, sources = list(frames), [image_source(x) for x in frames.values()]
    figure = go.Figure(go.Image(source=sources[0]))
    steps = [
        dict(method="restyle", label=str(label), args=[{"source": [source]}])
        for label, source in zip(labels, sources)
    ]
    figure.update_layout(
        title=title,
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix=prefix))],
    )
    figure.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    return figure


def curve_slider_figure(
    frames: Mapping, title: str | None = None, height: int = 420, prefix: str = ""
) -> go.Figure:
    """Curves that change with a slider under them: ``{label: [trace, ...]}``, every
    frame with the same traces in the same order (a step swaps their ``x`` and ``y``).

    The twin of a live ``widgets.figure_slider`` for the static HTML book: every frame
    is embedded, so the slider moves without a kernel.
    """
    if not frames:
        raise ValueError("curve_slider_figure needs at least one frame")
    traces = {label: list(frame) for label, frame in frames.items()}
    first = next(iter(traces.values()))
    if any(len(frame) != len(first) for frame in traces.values()):
        raise ValueError(
            "every frame of curve_slider_figure needs the same number of traces"
        )
    figure = go.Figure(first)
    steps = [
        dict(
            method="restyle",
            label=str(label),
            args=[
                {"x": [trace.x for trace in frame], "y": [trace.y for trace in frame]}
            ],
        )
        for label, frame in traces.items()
    ]
    figure.update_layout(
        title=title,
        height=height,
        sliders=[
            dict(
                active=0, steps=steps, currentvalue=dict(prefix=prefix), pad=dict(t=50)
            )
        ],
    )  # below the x axis title
    return figure
