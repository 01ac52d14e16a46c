"""FieldResult.to_napari in the real viewer: vectors and the speed,
vorticity and strain images, in physical units."""

import numpy as np

import ground_truth as gt
from napari_normxcorr import match_field


def test_field_layers_in_the_viewer(make_napari_viewer, tmp_path):
    pair = gt.particle_pair("rotation", shape=(192, 192))
    result = match_field(
        pair.template_image,
        pair.image,
        16,
        pixel_size=0.5,
        unit="mm",
        frame_interval=0.01,
        time_unit="s",
    )
    viewer = make_napari_viewer()
    viewer.add_image(pair.template_image, scale=(0.5, 0.5))
    for data, kwargs, kind in result.to_napari():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    names = [layer.name for layer in viewer.layers]
    assert "field vectors" in names
    assert "speed (mm/s)" in names
    assert "vorticity (1/s)" in names
    vorticity = viewer.layers["vorticity (1/s)"]
    # A counter-clockwise rotation by 0.02 rad per 0.01 s: 4 / s.
    assert np.nanmedian(vorticity.data[1:-1, 1:-1]) == np.float64(
        np.nanmedian(result.vorticity()[1:-1, 1:-1])
    )
    low, high = vorticity.contrast_limits
    assert low == -high
    vectors = viewer.layers["field vectors"]
    # Grid points land on the image's pixels in world units.
    first = vectors.data[0, 0] * np.asarray(vectors.scale)
    np.testing.assert_allclose(first, result.points.reshape(-1, 2)[0] * 0.5)
    speed = viewer.layers["speed (mm/s)"]
    np.testing.assert_allclose(
        speed.data_to_world((0, 0)), result.points[0, 0] * 0.5
    )
    viewer.screenshot(str(tmp_path / "field.png"), canvas_only=True)
