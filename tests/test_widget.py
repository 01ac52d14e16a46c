"""The dock widget in a real napari viewer: pickers, runs, bad input."""

import numpy as np
import pytest

from helpers import (
    SHIFT,
    choose,
    open_widget,
    pair_widget,
    rgb_texture,
    run_and_wait,
    texture,
)
from napari_normxcorr import MatchWidget, match_points


def test_widget_opens_from_manifest_and_matches(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = open_widget(viewer)
    assert isinstance(widget, MatchWidget)
    layers = viewer.layers
    choose(widget, layers["before"], layers["after"], layers["pois"])
    before = {ly.name: np.array(ly.data, copy=True) for ly in layers}
    layers.selection.active = layers["pois"]
    run_and_wait(widget)
    # The outputs did not take over the layer the user clicks points on.
    assert layers.selection.active is layers["pois"]

    matched = layers["pois matched"]
    points = layers["pois"].data
    np.testing.assert_allclose(matched.data, points + SHIFT, atol=1e-6)
    features = matched.features
    np.testing.assert_allclose(features["score"], 1.0, atol=1e-6)
    np.testing.assert_allclose(features["offset-0"], SHIFT[0], atol=1e-6)
    np.testing.assert_allclose(features["offset-1"], SHIFT[1], atol=1e-6)
    assert list(features["status"]) == ["ok"] * 3
    assert {"distinctiveness", "consistency", "second_score"} <= set(features)

    vectors = layers["pois displacement"].data
    np.testing.assert_allclose(vectors[:, 0], points)
    np.testing.assert_allclose(vectors[:, 1], [SHIFT] * 3, atol=1e-6)

    surface = layers["pois NCC surface"]
    peak = np.unravel_index(np.argmax(surface.data), surface.data.shape)
    peak_world = surface.data_to_world(peak)
    np.testing.assert_allclose(peak_world, matched.data[0], atol=1e-6)
    assert tuple(surface.contrast_limits) == (-1.0, 1.0)

    # Input layers are untouched.
    for name, data in before.items():
        np.testing.assert_array_equal(layers[name].data, data)


def test_rerun_updates_instead_of_duplicating(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = pair_widget(viewer)
    run_and_wait(widget)
    count = len(viewer.layers)
    viewer.layers["pois"].data = [[80.0, 90.0]]
    run_and_wait(widget)
    assert len(viewer.layers) == count
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data, [[84.0, 84.0]], atol=1e-6
    )
    assert len(viewer.layers["pois matched"].features) == 1


def test_selecting_a_match_shows_its_surface(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = pair_widget(viewer)
    run_and_wait(widget)
    matched = viewer.layers["pois matched"]
    matched.selected_data = {2}
    surface = viewer.layers["pois NCC surface"]
    assert surface.metadata["point"] == 2
    peak = np.unravel_index(np.argmax(surface.data), surface.data.shape)
    np.testing.assert_allclose(
        surface.data_to_world(peak), matched.data[2], atol=1e-6
    )


def test_scale_and_translate_are_respected(make_napari_viewer, qtbot):
    """Template with scale (2, 2), target with translate (10, -5)."""
    viewer = make_napari_viewer()
    base = texture((150, 150), seed=3)
    moved = np.roll(base, SHIFT, axis=(0, 1))
    viewer.add_image(base, name="before", scale=(2, 2))
    viewer.add_image(moved, name="after", translate=(10, -5))
    # Points clicked on the template: world = 2 * template pixel.
    template_pixels = np.array([[30.0, 40.0], [45.0, 30.0]])
    viewer.add_points(template_pixels * 2, name="pois")
    widget = pair_widget(viewer)
    widget.search_radius.value = (120, 120)
    run_and_wait(widget)
    # The same pixel content sits in the target at pixel + SHIFT, whose
    # world position is pixel + SHIFT + (10, -5).
    expected_world = template_pixels + SHIFT + np.array([10, -5])
    direct = match_points(
        base,
        moved,
        template_pixels,
        template_radius=15,
        search_radius=120,
        image_points=template_pixels * 2 - [10, -5],
    )
    np.testing.assert_allclose(
        direct.matched + [10, -5], expected_world, atol=1e-6
    )
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data, expected_world, atol=1e-6
    )
    surface = viewer.layers["pois NCC surface"]
    peak = np.unravel_index(np.argmax(surface.data), surface.data.shape)
    np.testing.assert_allclose(
        surface.data_to_world(peak), expected_world[0], atol=1e-6
    )


def test_time_lapse_points_match_in_their_frame(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    frames = np.stack([texture((100, 110), seed=s) for s in range(3)])
    moved = np.roll(frames, (2, 3), axis=(1, 2))
    # napari's axis labels say the first axis is time: plane by plane.
    axes = ("t", "y", "x")
    viewer.add_image(frames, name="t0", axis_labels=axes)
    viewer.add_image(moved, name="t1", axis_labels=axes)
    viewer.add_points([[0, 50, 50], [2, 40.0, 60.0]], name="pois")
    widget = open_widget(viewer)
    choose(
        widget, viewer.layers["t0"], viewer.layers["t1"], viewer.layers["pois"]
    )
    run_and_wait(widget)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data,
        [[0, 52, 53], [2, 42, 63]],
        atol=1e-6,
    )
    surface = viewer.layers["pois NCC surface"]
    assert surface.ndim == 3
    assert surface.data.shape[0] == 1
    peak = np.unravel_index(np.argmax(surface.data), surface.data.shape)
    np.testing.assert_allclose(
        surface.data_to_world(peak), [0, 52, 53], atol=1e-6
    )


def test_rgb_images_are_matched_in_luminance(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rgb = rgb_texture((120, 120), seed=4)
    viewer.add_image(rgb, name="before", rgb=True)
    viewer.add_image(np.roll(rgb, SHIFT, axis=(0, 1)), name="after", rgb=True)
    viewer.add_points([[60.0, 60.0]], name="pois")
    widget = pair_widget(viewer)
    run_and_wait(widget)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data, [[64.0, 54.0]], atol=1e-6
    )


def test_search_radius_per_axis(viewer_with_pair, qtbot):
    widget = pair_widget(viewer_with_pair)
    widget.template_radius.value = 10
    # The shift is (4, -6): room for 5 rows and 7 cols finds it ...
    widget.search_radius.value = (15, 17)
    run_and_wait(widget)
    assert list(widget.result.status) == ["ok"] * 3
    np.testing.assert_allclose(widget.result.offset, [SHIFT] * 3, atol=1e-6)
    assert widget.result.surface(0).values.shape == (11, 15)
    # ... room for 3 rows does not: the best place is on the border.
    widget.search_radius.value = (13, 17)
    run_and_wait(widget)
    assert widget.result.surface(0).values.shape == (7, 15)
    assert set(widget.result.status) == {"peak on search border"}


def test_cancel_stops_without_adding_layers(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    base = texture((600, 600), seed=5)
    viewer.add_image(base, name="before")
    viewer.add_image(np.roll(base, SHIFT, axis=(0, 1)), name="after")
    rng = np.random.default_rng(0)
    viewer.add_points(rng.uniform(50, 550, size=(3000, 2)), name="pois")
    widget = pair_widget(viewer)
    count = len(viewer.layers)
    worker = widget.run()
    aborted = []
    worker.aborted.connect(lambda: aborted.append(True))
    widget.cancel()
    widget.wait_until_done(60)
    assert aborted
    assert widget.result is None
    assert len(viewer.layers) == count


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_points_layer", "Choose a Points layer"),
        ("empty_points", "has no points"),
        ("outside", "outside the template image"),
        ("dimensions", "incompatible dimensionality"),
        ("radius", "too large"),
        ("search_smaller", "must be at least the template radius"),
    ],
)
def test_bad_input_notifies_and_changes_nothing(
    make_napari_viewer, qtbot, monkeypatch, setup, message
):
    viewer = make_napari_viewer()
    base = texture((80, 90))
    viewer.add_image(base, name="before")
    viewer.add_image(base, name="after")
    if setup != "no_points_layer":
        data = {
            "empty_points": np.empty((0, 2)),
            "outside": [[500.0, 500.0], [-40.0, 3.0]],
            "dimensions": [[0, 10.0, 10.0]],
        }.get(setup, [[40.0, 40.0]])
        viewer.add_points(
            data, name="pois", ndim=np.shape(data)[1] if np.size(data) else 2
        )
    widget = open_widget(viewer)
    widget.template_layer.value = viewer.layers["before"]
    widget.image_layer.value = viewer.layers["after"]
    if setup == "radius":
        widget.template_radius.value = 60
    if setup == "search_smaller":
        widget.search_radius.value = (5, 5)
    warnings = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", warnings.append
    )
    count = len(viewer.layers)
    assert widget.run() is None
    assert len(warnings) == 1
    assert message in warnings[0]
    assert len(viewer.layers) == count


def test_worker_errors_become_notifications(
    viewer_with_pair, qtbot, monkeypatch
):
    viewer = viewer_with_pair
    widget = pair_widget(viewer)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("napari_normxcorr._napari.jobs.match_points", broken)
    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    widget.run()
    widget.wait_until_done(30)
    assert errors == ["Matching failed: disk on fire"]
    assert "pois matched" not in viewer.layers


def test_result_after_the_points_layer_is_gone_is_dropped(
    viewer_with_pair, qtbot
):
    viewer = viewer_with_pair
    widget = pair_widget(viewer)
    layers = viewer.layers
    worker = widget.run()
    # The worker's result is delivered by the event loop, so after this.
    layers.remove("pois")
    widget.wait_until_done(30)
    assert worker is not None
    assert widget.result is None
    assert "pois matched" not in layers


def test_pickers_follow_layers(viewer_with_pair):
    viewer = viewer_with_pair
    widget = open_widget(viewer)
    names = [c for c in widget.image_layer.choices]
    assert [ly.name for ly in names] == ["before", "after"]
    viewer.add_image(np.zeros((10, 10)), name="third")
    assert "third" in [ly.name for ly in widget.image_layer.choices]
    viewer.layers["third"].name = "renamed"
    combo = widget.image_layer.native
    shown = [combo.itemText(i) for i in range(combo.count())]
    assert shown == ["before", "after", "renamed"]
    viewer.layers.remove("renamed")
    assert len(widget.image_layer.choices) == 2
    # Defaults: two different images and the points layer.
    assert widget.template_layer.value is not widget.image_layer.value
    assert widget.points_layer.value is viewer.layers["pois"]


def test_docked_first_picks_layers_in_the_order_added(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    widget = open_widget(viewer)
    base = texture((160, 180))
    # Each new layer is selected when added: the last image must not win.
    viewer.add_image(base, name="before")
    viewer.add_image(np.roll(base, SHIFT, axis=(0, 1)), name="after")
    viewer.add_points([[60.0, 70.0], [100.0, 120.0]], name="pois")
    assert widget.template_layer.value is viewer.layers["before"]
    assert widget.image_layer.value is viewer.layers["after"]
    run_and_wait(widget)
    assert np.allclose(widget.result.offset, SHIFT, atol=0.05)


def test_closing_the_viewer_during_a_run_raises_nothing(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    base = texture((600, 600), seed=5)
    viewer.add_image(base, name="before")
    viewer.add_image(np.roll(base, SHIFT, axis=(0, 1)), name="after")
    rng = np.random.default_rng(0)
    viewer.add_points(rng.uniform(50, 550, size=(3000, 2)), name="pois")
    widget = pair_widget(viewer)
    worker = widget.run()
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    viewer.close()
    # pytest-qt fails the test on any exception raised in a Qt callback.
    qtbot.waitUntil(lambda: bool(finished), timeout=60_000)


def test_runs_in_chunks_judge_neighbours_over_all_points(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    base = texture((420, 420), seed=9)
    after = np.roll(base, (2, 3), axis=(0, 1))
    # More points than one chunk (256), and one planted outlier.
    axis = np.arange(30.0, 391.0, 20.0)
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(
        -1, 2
    )
    r, c = 210 + 11, 210 + 3
    patch = (slice(r - 9, r + 10), slice(c - 9, c + 10))
    after[patch] = np.roll(base, (11, 3), axis=(0, 1))[patch]
    viewer.add_image(base, name="before")
    viewer.add_image(after, name="after")
    viewer.add_points(points, name="pois")
    widget = open_widget(viewer)
    widget.template_radius.value = 8
    widget.search_radius.value = (20, 20)
    run_and_wait(widget)
    expected = match_points(
        base, after, points, **widget.match_options().as_keywords()
    )
    assert len(points) > 256
    assert list(widget.result.status) == list(expected.status)
    np.testing.assert_array_equal(
        widget.result.neighbour_residual, expected.neighbour_residual
    )
    assert "outlier" in [str(s) for s in expected.status]


def test_each_task_has_a_tab_that_scrolls_instead_of_growing(
    make_napari_viewer, qtbot
):
    """Match, Track, Register and Dense field are tabs under the shared
    pickers; each scrolls up and down, as wide as its widest control, and
    the Match tab's expert settings are folded away."""
    from qtpy.QtWidgets import QScrollArea
    from superqt import QCollapsible

    viewer = make_napari_viewer(show=True)
    widget = open_widget(viewer)
    tabs = widget.tabs
    titles = [tabs.tabText(i) for i in range(tabs.count())]
    assert titles == ["Match", "Track", "Register", "Dense field"]
    area = tabs.widget(0)
    assert isinstance(area, QScrollArea)
    (advanced,) = area.widget().findChildren(QCollapsible)
    assert not advanced.isExpanded()
    for name in ("min_score", "max_uncertainty", "search_radius"):
        assert advanced.isAncestorOf(getattr(widget, name).native)
    advanced.expand(animate=False)
    qtbot.wait(50)
    controls = area.widget()
    assert controls.sizeHint().height() > area.minimumSizeHint().height()
    assert area.minimumSizeHint().height() < 400
    assert area.minimumWidth() >= controls.sizeHint().width()
    for index in range(tabs.count()):
        assert isinstance(tabs.widget(index), QScrollArea)
    # The Track tab tracks the template's own frames: no target.
    tabs.setCurrentIndex(1)
    assert widget.template_layer.label == "time-lapse"
    assert not widget.image_layer.enabled
    tabs.setCurrentIndex(0)
    assert widget.template_layer.label == "template image"
    assert widget.image_layer.enabled
