"""A viewer with a shifted pair and the widget, for the GUI benchmarks."""

import time

import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from scipy import ndimage

from napari_normxcorr import MatchWidget


def viewer_with_widget(points, size=2000, show=True):
    """A viewer with 'before', 'after' (shifted), 'pois' and the widget.

    Returns the viewer, the points layer and the docked MatchWidget, its
    pickers set to those layers. A viewer that is not shown never paints
    its canvas.
    """
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(size, size)), 1.5)
    viewer = napari.Viewer(show=show)
    viewer.add_image(base, name="before")
    viewer.add_image(np.roll(base, (5, -8), axis=(0, 1)), name="after")
    layer = viewer.add_points(points, name="pois", size=3)
    widget = MatchWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.template_layer.value = viewer.layers["before"]
    widget.image_layer.value = viewer.layers["after"]
    widget.points_layer.value = layer
    return viewer, layer, widget


def wait(condition, timeout=60.0):
    """Process Qt events until `condition()` holds."""
    deadline = time.perf_counter() + timeout
    while not condition():
        QApplication.processEvents()
        time.sleep(0.001)
        if time.perf_counter() > deadline:
            raise TimeoutError("the widget did not finish")
