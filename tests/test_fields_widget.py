"""The widget's Dense field section: grid points, vector colours, field."""

import numpy as np
import pytest
from napari.utils.colormaps import ensure_colormap
from skimage.measure import points_in_poly

from helpers import open_widget, run_and_wait
from napari_normxcorr import Status, grid_points
from napari_normxcorr._napari.outputs import (
    MAGNITUDE_COLORMAP,
    magnitudes,
    status_colors,
)
from napari_normxcorr.fields._displacement import (
    displacement_field,
    field_magnitude,
)

SHAPE = (256, 256)


@pytest.fixture
def deformed(make_napari_viewer):
    """A viewer with the deformed sample and the widget, template 12."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-normxcorr", "deformed")
    widget = open_widget(viewer)
    layers = viewer.layers
    widget.template_layer.value = layers["before"]
    widget.image_layer.value = layers["after (deformed)"]
    widget.template_radius.value = 12
    widget.search_radius.value = (24, 24)
    widget.fields.spacing.value = 16
    return viewer, widget


@pytest.fixture
def field_run(deformed):
    """The deformed sample matched on a grid of spacing 16."""
    viewer, widget = deformed
    widget.fields.add_grid()
    run_and_wait(widget)
    return viewer, widget


def test_margin_follows_the_template_radius(deformed):
    """The margin is the template radius until the user sets it."""
    _, widget = deformed
    assert widget.fields.margin.value == 12
    widget.fields.margin.value = 30
    widget.template_radius.value = 9
    assert widget.fields.margin.value == 30


def test_grid_over_the_whole_image(deformed):
    """The grid layer holds grid_points of the template, in world
    coordinates, and becomes the points to match."""
    viewer, widget = deformed
    viewer.layers["before"].scale = (2.0, 0.5)
    layer = widget.fields.add_grid()
    expected = grid_points(SHAPE, 16, margin=12)
    assert len(layer.data) == len(expected)
    np.testing.assert_allclose(layer.data, expected * [2.0, 0.5])
    assert widget.points_layer.value == layer
    assert layer.name.startswith("grid points")


@pytest.mark.parametrize("kind", ["rectangle", "polygon"])
def test_grid_inside_shapes(deformed, kind):
    """With a Shapes layer chosen, only the points inside its shapes."""
    viewer, widget = deformed
    if kind == "rectangle":
        corners = np.array([[50.5, 60.5], [150.5, 200.5]])
        outline = [[50.5, 60.5], [50.5, 200.5], [150.5, 200.5], [150.5, 60.5]]
    else:
        corners = outline = [[30.5, 30.5], [220.5, 60.5], [120.5, 220.5]]
    shapes = viewer.add_shapes([corners], shape_type=kind, name="region")
    widget.fields.region.value = shapes
    layer = widget.fields.add_grid()
    everywhere = grid_points(SHAPE, 16, margin=12)
    expected = everywhere[points_in_poly(everywhere, outline)]
    assert 0 < len(expected) < len(everywhere)
    np.testing.assert_allclose(layer.data, expected)
    assert widget.points_layer.value == layer


def test_show_field_adds_the_engine_field(field_run):
    """Row, col and magnitude layers hold displacement_field of the
    result, placed like the template."""
    viewer, widget = field_run
    added = widget.fields.show_field()
    name = widget.points_layer.value.name
    names = [f"{name} field {part}" for part in ("row", "col", "magnitude")]
    assert [layer.name for layer in added] == names
    expected = displacement_field(widget.result, SHAPE)
    layers = viewer.layers
    np.testing.assert_array_equal(layers[names[0]].data, expected[0])
    np.testing.assert_array_equal(layers[names[1]].data, expected[1])
    np.testing.assert_array_equal(
        layers[names[2]].data, field_magnitude(expected)
    )
    template = layers["before"]
    for layer in added:
        np.testing.assert_allclose(
            layer.affine.affine_matrix, template.affine.affine_matrix
        )
        np.testing.assert_allclose(layer.scale, template.scale)
    # Shown again: updated in place, not duplicated.
    count = len(layers)
    widget.fields.show_field()
    assert len(layers) == count
    # Never offered as an input image.
    assert not set(names) & {c[0] for c in widget._pickers._image_choices()}


def test_show_field_before_a_run_warns(deformed):
    viewer, widget = deformed
    count = len(viewer.layers)
    assert widget.fields.show_field() is None
    assert len(viewer.layers) == count


def test_vectors_coloured_by_magnitude(field_run):
    """Longer vectors get colours further along the colormap; the legend
    shows the range."""
    viewer, widget = field_run
    widget.fields.coloring.value = "magnitude"
    name = widget.points_layer.value.name
    colors = viewer.layers[f"{name} displacement"].edge_color
    lengths = magnitudes(widget.result)
    assert len(colors) == len(lengths)
    # Where each colour sits on the colormap (nearest of 256 samples).
    ramp = ensure_colormap(MAGNITUDE_COLORMAP).map(np.linspace(0, 1, 256))
    position = np.argmin(
        np.linalg.norm(colors[:, None, :3] - ramp[None, :, :3], axis=2),
        axis=1,
    )
    order = np.argsort(lengths)
    assert (np.diff(position[order]) >= 0).all()
    assert position[order[0]] == 0 and position[order[-1]] == 255
    # The range is the ok matches' (a wild match would squeeze it).
    ok = lengths[widget.result.status == Status.OK]
    legend = widget.fields.legend
    assert legend.low.text() == f"{ok.min():.2f} px"
    assert legend.high.text() == f"{ok.max():.2f} px"
    assert not legend.bar.pixmap().isNull()


def test_vectors_coloured_by_status(field_run):
    """By status: the status colours; plain: yellow again."""
    viewer, widget = field_run
    name = widget.points_layer.value.name
    vectors = viewer.layers[f"{name} displacement"]
    widget.fields.coloring.value = "status"
    np.testing.assert_allclose(
        vectors.edge_color, status_colors(widget.result)
    )
    # The status colours have one legend, above the tabs.
    assert "ok" in widget.legend.text()
    widget.fields.coloring.value = "plain"
    assert (vectors.edge_color[:, :3] == [1.0, 1.0, 0.0]).all()
