import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from lic_teach import baselines, metrics, plots, widgets


def _image(value):
    return torch.full((3, 16, 24), value)


def test_offline_renderer_is_default_and_needs_no_network():
    assert pio.renderers.default == plots.RENDERER
    bundle = plots.OfflineBookRenderer().to_mimebundle(
        go.Figure(go.Scatter(y=[1, 3])).to_dict()
    )
    html = bundle["text/html"]
    assert "application/vnd.plotly.v1+json" in bundle
    assert "Plotly.newPlot" in html
    assert len(html) < 20_000
    assert "cdn" not in html.lower()
    assert "require" not in html


def test_rd_figure_marks_published_curves():
    measured = metrics.RDCurve("ours", [0.1, 0.5], [28.0, 33.0])
    published = baselines.reference_curves(["jpeg"])["jpeg"]
    figure = plots.rd_figure([measured, published])
    dashes = [trace.line.dash for trace in figure.data]
    assert dashes == ["solid", "dash"]
    assert figure.layout.yaxis.title.text == "PSNR (dB)"
    assert len(plots.rd_figure({"p": published}, metric="ms_ssim").data) == 1
    with pytest.raises(ValueError):
        plots.rd_figure([measured], metric="ssim")


def test_image_figures_embed_png():
    figure = plots.images_figure({"a": _image(0.2), "b": _image(0.8)})
    assert len(figure.data) == 2
    assert figure.data[0].source.startswith("data:image/png;base64,")
    slider = plots.image_slider_figure({"one": _image(0.1), "two": _image(0.9)})
    steps = slider.layout.sliders[0].steps
    assert [s.label for s in steps] == ["one", "two"]
    assert steps[1].args[0]["source"][0] != steps[0].args[0]["source"][0]
    with pytest.raises(ValueError):
        plots.image_slider_figure({})


def test_image_slider_widget_redraws():
    calls = []

    def render(value):
        calls.append(value)
        return _image(value), f"value {value}"

    box = widgets.image_slider(render, [0.1, 0.5, 0.9], "v")
    slider, image, caption = box.children
    first = image.value
    slider.value = 0.9
    assert calls == [0.1, 0.9]
    assert caption.value == "value 0.9"
    assert image.value != first
    assert image.value[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        widgets.image_slider(render, [])


def test_curve_slider_figure_swaps_the_curves_of_each_frame():
    frames = {
        f"{a}": [go.Scatter(x=[0, 1], y=[0, a]), go.Scatter(x=[0, 1], y=[a, 0])]
        for a in (1, 2)
    }
    figure = plots.curve_slider_figure(frames, prefix="a = ")
    steps = figure.layout.sliders[0].steps
    assert len(figure.data) == 2
    assert [s.label for s in steps] == ["1", "2"]
    assert list(steps[1].args[0]["y"][0]) == [0, 2]
    assert list(steps[1].args[0]["y"][1]) == [2, 0]
    with pytest.raises(ValueError, match="same number"):
        plots.curve_slider_figure({"1": frames["1"], "2": frames["2"][:1]})
    with pytest.raises(ValueError):
        plots.curve_slider_figure({})


def test_figure_slider_widget_redraws(monkeypatch):
    import plotly.io as pio

    monkeypatch.setattr(
        pio.renderers, "default", "json"
    )  # what a notebook's renderer would show
    calls = []

    def render(value):
        calls.append(value)
        return go.Figure(go.Scatter(y=[0, value]))

    box = widgets.figure_slider(render, [1, 2, 3], "a")
    slider, output = box.children
    slider.value = 3
    assert calls == [1, 3]
    assert slider.description == "a"
    assert len(output.outputs) == 1  # the new figure replaced the old one
    shown = output.outputs[0]["data"]
    assert any(
        str([0, 3]) in str(value) or "[0,3]" in str(value) for value in shown.values()
    ), list(shown)
    with pytest.raises(ValueError):
        widgets.figure_slider(render, [])
