"""ipywidgets demos: change a parameter with a slider and see the result at once.

These need a live kernel (JupyterLab, Colab), so the book removes their output from the
HTML. Each demo in a chapter has a twin that needs none: a plotly figure whose slider
steps through precomputed frames (``plots.image_slider_figure`` for ``image_slider``,
``plots.curve_slider_figure`` for ``figure_slider``).
"""

from __future__ import annotations

import io

import ipywidgets as widgets

from .data import to_pil


def png_bytes(x) -> bytes:
    """A ``[3, H, W]`` image as PNG bytes, for an ``ipywidgets.Image``."""
    buffer = io.BytesIO()
    to_pil(x).save(buffer, format="PNG")
    return buffer.getvalue()


def image_slider(render, values, description: str = "value") -> widgets.VBox:
    """A slider over ``values``; moving it calls ``render(value) -> (image, caption)``
    and shows the image ``[3, H, W]`` with its caption (HTML allowed) under it.

    Returns the widget (display it, or make it a cell's last value). Its children are
    ``(slider, image, caption)``, so a test or a reader can drive it from code.
    """
    slider = _slider(values, description, "image_slider")
    image = widgets.Image(format="png")
    caption = widgets.HTML()

    def redraw(change=None):
        picture, text = render(slider.value)
        image.value, caption.value = png_bytes(picture), text

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, image, caption])


def figure_slider(render, values, description: str = "value") -> widgets.VBox:
    """A slider over ``values``; moving it calls ``render(value) -> plotly Figure`` and
    shows the figure. Returns the widget; its children are ``(slider, output)``.

    The figure's display data (for plotly's active renderer) is set as the ``Output``
    widget's content, not printed while the widget captures the cell's output:
    capturing made notebook runners (nbclient) stall for their whole cell timeout now
    and then."""
    slider = _slider(values, description, "figure_slider")
    output = widgets.Output()

    def redraw(change=None):
        bundle = render(slider.value)._repr_mimebundle_()
        output.outputs = (
            {"output_type": "display_data", "data": bundle, "metadata": {}},
        )

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, output])


def _slider(values, description: str, caller: str) -> widgets.SelectionSlider:
    values = list(values)
    if not values:
        raise ValueError(f"{caller} needs at least one value")
    return widgets.SelectionSlider(
        options=values,
        value=values[0],
        description=description,
        continuous_update=False,
        layout=widgets.Layout(width="60%"),
    )
