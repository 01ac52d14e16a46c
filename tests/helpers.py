"""Helpers for the tests that drive the widget in a real napari viewer."""

import numpy as np
from scipy import ndimage

# The target of the pair is the template rolled by this many pixels.
SHIFT = (4, -6)


def texture(shape, seed=0):
    """Smooth random texture with unit standard deviation."""
    rng = np.random.default_rng(seed)
    values = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    return values / values.std()


def rgb_texture(shape, seed=0):
    """An RGB uint8 texture whose luminance varies like `texture`."""
    grey = texture(shape, seed)
    rgb = np.stack([grey, 0.5 * grey, -grey], axis=-1) * 40 + 128
    return np.clip(rgb, 0, 255).astype(np.uint8)


def open_widget(viewer):
    """The widget, opened as a user does: through the plugin's manifest."""
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-normxcorr", "Match points (NCC)"
    )
    return widget


def run_and_wait(widget):
    """Press Run and wait for the result."""
    worker = widget.run()
    assert worker is not None
    widget.wait_until_done(30)
    assert widget.result is not None
    return worker


def choose(widget, template, image, points):
    """Pick the three input layers."""
    widget.template_layer.value = template
    widget.image_layer.value = image
    widget.points_layer.value = points


def pair_widget(viewer):
    """The widget, set to match 'pois' from 'before' into 'after'."""
    widget = open_widget(viewer)
    layers = viewer.layers
    choose(widget, layers["before"], layers["after"], layers["pois"])
    return widget


def live_widget(viewer):
    """The pair widget after a first run (live mode is on then)."""
    widget = pair_widget(viewer)
    run_and_wait(widget)
    assert widget.live.value, "live mode turns on after the first run"
    return widget


def drag(layer, index, position):
    """What napari does for one step of dragging point `index`."""
    layer.data[index] = position
    layer.refresh()
    layer.events.data(
        value=layer.data,
        action="changed",
        data_indices=(index,),
        vertex_indices=((),),
    )
