"""ipywidgets demos: change a parameter with a slider and see the result at once.

These need a live kernel (JupyterLab, Colab); the static book shows the same content
with ``plots.image_slider_figure``, which needs none.
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
    values = list(values)
    if not values:
        raise ValueError("image_slider needs at least one value")
    slider = widgets.SelectionSlider(options=values, value=values[0], description=description,
                                     continuous_update=False, layout=widgets.Layout(width="60%"))
    image = widgets.Image(format="png")
    caption = widgets.HTML()

    def redraw(change=None):
        picture, text = render(slider.value)
        image.value, caption.value = png_bytes(picture), text

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, image, caption])
