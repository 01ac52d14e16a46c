"""No-data in the widget: NaN pixels and Labels layers of ignored pixels."""

import numpy as np

from helpers import SHIFT, pair_widget, run_and_wait


def test_nan_in_the_target_is_no_data(viewer_with_pair, qtbot):
    """A NaN stripe through a third of a search window: still ok, exact."""
    viewer = viewer_with_pair
    after = viewer.layers["after"].data.copy()
    after[50:125, 120:129] = np.nan  # beside the match of point 1
    viewer.layers["after"].data = after
    widget = pair_widget(viewer)
    run_and_wait(widget)
    assert list(widget.result.status) == ["ok"] * 3
    np.testing.assert_allclose(widget.result.offset, [SHIFT] * 3, atol=0.05)


def test_a_labels_layer_marks_a_templates_pixels_as_no_data(
    viewer_with_pair, qtbot
):
    viewer = viewer_with_pair
    labels = np.zeros(viewer.layers["before"].data.shape, dtype=np.uint8)
    labels[40:81, 50:91] = 1  # all of point 0's template window
    mask = viewer.add_labels(labels, name="clouds")
    widget = pair_widget(viewer)
    assert widget.template_mask.value is None, "no mask until chosen"
    widget.template_mask.value = mask
    run_and_wait(widget)
    assert list(widget.result.status) == ["too little data", "ok", "ok"]
    np.testing.assert_array_equal(mask.data, labels)  # input untouched


def test_a_mask_of_another_shape_is_refused(
    viewer_with_pair, qtbot, monkeypatch
):
    viewer = viewer_with_pair
    mask = viewer.add_labels(np.zeros((10, 10), dtype=np.uint8), name="m")
    widget = pair_widget(viewer)
    widget.image_mask.value = mask
    warnings = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", warnings.append
    )
    count = len(viewer.layers)
    assert widget.run() is None
    assert len(warnings) == 1 and "pixel for pixel" in warnings[0]
    assert len(viewer.layers) == count
