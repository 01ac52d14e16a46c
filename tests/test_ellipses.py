"""Uncertainty ellipses in the viewer: on demand, along the edge."""

import numpy as np
from scipy import ndimage

from helpers import open_widget, run_and_wait, texture
from napari_normxcorr import Status


def test_ellipses_show_each_match_and_run_along_an_edge(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    # Left half textured, right half a vertical edge only.
    base = texture((200, 240), seed=3)
    columns = np.arange(240.0)
    base[:, 120:] = 1 / (1 + np.exp(-(columns[120:] - 180) / 3))
    moved = ndimage.shift(base, (3.0, 0.5), order=3, mode="nearest")
    viewer.add_image(base, name="before")
    viewer.add_image(moved, name="after")
    viewer.add_points([[100.0, 60.0], [100.0, 180.0]], name="pois")
    widget = open_widget(viewer)
    widget.template_radius.value = 10
    widget.search_radius.value = (20, 20)
    run_and_wait(widget)
    result = widget.result
    assert list(result.status) == [Status.OK, Status.EDGE_ONLY]
    assert "pois uncertainty" not in viewer.layers
    widget.ellipses.value = True
    layer = viewer.layers["pois uncertainty"]
    assert layer.shape_type == ["ellipse", "ellipse"]
    (textured, edge) = (np.ptp(box, axis=0) for box in layer.data)
    # A small ellipse on texture; along the edge (rows) a long thin one,
    # capped at the search radius.
    assert textured.max() < 2
    assert edge[0] > 10 * edge[1]
    assert edge[0] <= 2 * 20 + 1e-6
    viewer.screenshot(str(tmp_path / "ellipses.png"), canvas_only=True)
    widget.ellipses.value = False
    assert "pois uncertainty" not in viewer.layers
