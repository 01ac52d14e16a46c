"""The Dense field run from the widget, in the real viewer: match_field
on the chosen layers, its layers in the template's units and place."""

import numpy as np

import ground_truth as gt
from napari_normxcorr._napari.field_run import VECTORS, FieldRun


def panel(viewer, template, image, messages):
    return FieldRun(viewer, lambda: (template, image), messages.append)


def test_a_field_in_the_template_layers_units(make_napari_viewer, qtbot):
    pair = gt.particle_pair("rotation", shape=(160, 160))
    viewer = make_napari_viewer()
    options = {
        "scale": (0.5, 0.5),
        "translate": (10.0, 20.0),
        "units": ("mm", "mm"),
    }
    template = viewer.add_image(pair.template_image, name="a", **options)
    image = viewer.add_image(pair.image, name="b", **options)
    before = template.data.copy()
    messages = []
    run = panel(viewer, template, image, messages)
    run.interval.value = "0.1"
    run.time_unit.value = "s"
    run.run()
    qtbot.waitUntil(lambda: run.result is not None, timeout=60_000)
    np.testing.assert_array_equal(template.data, before)
    names = [layer.name for layer in viewer.layers]
    assert VECTORS in names and "speed (mm/s)" in names
    assert "vorticity (1/s)" in names
    vorticity = viewer.layers["vorticity (1/s)"]
    # A rotation of 0.02 rad in 0.1 s: a vorticity of 0.4 per second.
    assert np.nanmedian(vorticity.data[1:-1, 1:-1]) == np.float64(
        np.nanmedian(run.result.vorticity()[1:-1, 1:-1])
    )
    assert abs(np.nanmedian(vorticity.data[1:-1, 1:-1]) - 0.4) < 0.02
    # The first grid point lands on its template pixel in the world.
    vectors = viewer.layers[VECTORS]
    point = run.result.points.reshape(-1, 2)[0]
    world = vectors.data_to_world(vectors.data[0, 0])
    np.testing.assert_allclose(world, template.data_to_world(point))
    assert viewer.layers["speed (mm/s)"].colorbar.visible
    length = vectors.length
    run.length.value = 2.0
    assert vectors.length == 2 * length
    assert any("vectors" in m for m in messages)


def test_the_same_layer_twice_is_refused(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((64, 64)))
    messages = []
    panel(viewer, layer, layer, messages).run()
    assert "same layer" in messages[-1]
    panel(viewer, layer, viewer.add_image(np.zeros((32, 32))), messages).run()
    assert "differ in shape" in messages[-1]
    other = viewer.add_image(np.ones((64, 64)))
    bad_time = panel(viewer, layer, other, messages)
    bad_time.interval.value = "soon"
    bad_time.run()
    assert "time between images" in messages[-1]
    assert [lay.name for lay in viewer.layers][-1] != VECTORS
