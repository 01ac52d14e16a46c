"""Output layers: surfaces, peak markers, height field, owned data."""

import numpy as np

from helpers import live_widget


def test_peaks_marked_and_height_field(viewer_with_pair, qtbot):
    from napari_normxcorr.core._peaks import second_peak

    viewer = viewer_with_pair
    widget = live_widget(viewer)
    peaks = viewer.layers["pois peaks"]
    assert list(peaks.features["peak"]) == ["best", "second"]
    np.testing.assert_allclose(
        peaks.data[0], viewer.layers["pois matched"].data[0], atol=1e-6
    )
    surface = widget.result.surface(0)
    index, value = second_peak(surface.values)
    np.testing.assert_allclose(peaks.data[1], surface.origin + index)
    assert value < surface.values.max()
    widget.height_field.value = True
    mesh = viewer.layers["pois NCC height field"]
    vertices, faces, values = mesh.data
    assert vertices.shape == (surface.values.size, 3)
    top = np.argmax(values)
    np.testing.assert_allclose(
        vertices[top, 1:], viewer.layers["pois matched"].data[0], atol=1e-6
    )
    rows, cols = surface.values.shape
    assert faces.shape == (2 * (rows - 1) * (cols - 1), 3)


def test_output_images_own_their_data(make_napari_viewer):
    from napari_normxcorr._napari.layers import set_or_add

    viewer = make_napari_viewer()
    first, second = np.zeros((3, 4)), np.ones((3, 4))
    kwargs = dict(update=("affine",), affine=np.eye(3))
    layer = set_or_add(viewer, "surface", "image", first, **kwargs)
    assert set_or_add(viewer, "surface", "image", second, **kwargs) is layer
    # The update wrote into the layer's own copy, never into `first` (a
    # kept surface of another point, in the widget).
    np.testing.assert_array_equal(layer.data, second)
    np.testing.assert_array_equal(first, 0.0)
