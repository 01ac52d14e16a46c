"""The widget's life in the viewer and how it looks: what it owns goes
with it, outputs fit the inputs, every control explains itself."""

import warnings

import numpy as np
import pytest

from helpers import SHIFT, live_widget, open_widget, pair_widget, run_and_wait
from napari_normxcorr._napari.legend import STATUS_COLORS, rgba
from napari_normxcorr._napari.lifecycle import RESULTS_DOCK
from napari_normxcorr._napari.outputs import is_output
from napari_normxcorr._napari.widget import RUN_KEY, TRACK_KEY

OKABE_ITO = {
    "#009E73",
    "#F0E442",
    "#E69F00",
    "#56B4E9",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
}


def close_dock(widget, qtbot):
    """Close the widget's dock as its close button does."""
    from qtpy.QtWidgets import QDockWidget

    dock = widget.native.parent()
    while not isinstance(dock, QDockWidget):
        dock = dock.parent()
    dock.destroyOnClose()
    qtbot.waitUntil(lambda: widget._life.closed, timeout=5000)


def test_the_results_dock_belongs_to_its_widget(viewer_with_pair, qtbot):
    """Closing the widget takes its results dock; reopening and running
    again gives one results dock, not two."""
    viewer = viewer_with_pair
    widget = pair_widget(viewer)
    qtbot.wait(10)  # docked: the widget watches its dock
    run_and_wait(widget)
    assert RESULTS_DOCK in viewer.window.dock_widgets
    close_dock(widget, qtbot)
    assert RESULTS_DOCK not in viewer.window.dock_widgets
    again = pair_widget(viewer)
    assert again is not widget
    run_and_wait(again)
    docks = [name for name in viewer.window.dock_widgets if "result" in name]
    assert docks == [RESULTS_DOCK]


def test_height_field_goes_with_its_checkbox(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer)
    widget.height_field.value = True
    assert "pois NCC height field" in viewer.layers
    assert viewer.dims.ndisplay == 3
    widget.height_field.value = False
    assert "pois NCC height field" not in viewer.layers
    # No slider left over from the mesh's height axis.
    assert viewer.dims.ndisplay == 2
    assert viewer.dims.ndim == 2


def test_opening_before_the_deformed_sample_picks_its_points(
    make_napari_viewer, qtbot
):
    """The true positions are answers, never the points to match; the
    sample's radii are adopted."""
    viewer = make_napari_viewer()
    widget = open_widget(viewer)
    viewer.open_sample("napari-normxcorr", "deformed")
    assert widget.points_layer.value is viewer.layers["grid points"]
    assert widget.template_layer.value is viewer.layers["before"]
    assert widget.image_layer.value is viewer.layers["after (deformed)"]
    assert widget.template_radius.value == 12
    assert tuple(widget.max_displacement.value) == (12, 12)
    assert tuple(widget.search_radius.value) == (24, 24)


def test_live_mode_stays_off_once_turned_off(viewer_with_pair, qtbot):
    widget = live_widget(viewer_with_pair)
    widget.live.value = False
    run_and_wait(widget)
    assert not widget.live.value


def test_outputs_carry_units_and_point_sizes_in_world(
    make_napari_viewer, qtbot
):
    """Layers with scale 0.5 in micrometres: the matches are drawn as
    large as the points, in micrometres, without napari's unit warning."""
    from helpers import texture

    viewer = make_napari_viewer()
    base = texture((160, 180))
    kwargs = {"scale": (0.5, 0.5), "units": ("um", "um")}
    viewer.add_image(base, name="before", **kwargs)
    viewer.add_image(np.roll(base, SHIFT, axis=(0, 1)), name="after", **kwargs)
    viewer.add_points(
        np.array([[60.0, 70.0], [100.0, 120.0]]) * 0.5,
        name="pois",
        size=10,
        **kwargs,
    )
    widget = pair_widget(viewer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_and_wait(widget)
    assert not [w for w in caught if "nconsistent units" in str(w.message)]
    matched = viewer.layers["pois matched"]
    np.testing.assert_allclose(matched.size * matched.scale[-1], 5.0)
    for suffix in (" matched", " displacement", " NCC surface", " peaks"):
        layer = viewer.layers["pois" + suffix]
        assert [str(u) for u in layer.units] == ["micrometer"] * 2, suffix


def test_progress_shows_on_every_run(viewer_with_pair, qtbot):
    """A quick run does not hide the next run's progress."""
    widget = pair_widget(viewer_with_pair)
    for _ in range(3):
        worker = widget.run()
        assert worker is not None
        assert not widget.progress.native.isHidden()
        assert widget.progress.max >= 1
        widget.wait_until_done(30)
        assert widget.progress.native.isHidden()


def test_status_colours_are_colour_blind_safe_with_one_legend(
    viewer_with_pair, qtbot
):
    """Okabe-Ito colours (white for the search border): no two groups of
    statuses share one; the legend sits above the tabs, so every tab
    shows it."""
    palette = {rgba(c) for c in OKABE_ITO} | {rgba("#FFFFFF")}
    assert set(STATUS_COLORS.values()) <= palette
    colours = {}
    for status, colour in STATUS_COLORS.items():
        colours.setdefault(colour, []).append(str(status))
    shared = [names for names in colours.values() if len(names) > 1]
    assert shared == [["failed consistency", "outlier", "transform outlier"]]
    widget = open_widget(viewer_with_pair)
    assert not widget.tabs.isAncestorOf(widget.legend)
    for status in ("ok", "peak on search border", "low score", "no match"):
        assert status in widget.legend.text()


def _controls(container):
    """Every value widget and button in `container` and its children."""
    from magicgui.widgets import Container, Label

    for child in container:
        if isinstance(child, Container):
            yield from _controls(child)
        elif not isinstance(child, Label):
            yield child


def test_every_control_has_a_tooltip(viewer_with_pair, qtbot):
    widget = open_widget(viewer_with_pair)
    parts = [
        widget,
        widget._top,
        widget._advanced,
        widget.tracking,
        widget.register,
        widget.fields,
    ]
    missing = [
        control.label or control.text
        for part in parts
        for control in _controls(part)
        if not control.tooltip
    ]
    assert missing == []


def test_keyboard_shortcuts_run_and_track(viewer_with_pair, qtbot):
    from napari.utils.key_bindings import coerce_keybinding

    viewer = viewer_with_pair
    widget = pair_widget(viewer)
    assert "Ctrl+Enter" in widget.run_button.tooltip
    assert "Ctrl+Shift+Enter" in widget.tracking.track_button.tooltip
    run = viewer.keymap[coerce_keybinding(RUN_KEY)]
    assert coerce_keybinding(TRACK_KEY) in viewer.keymap
    run(viewer)
    assert widget.running
    widget.wait_until_done(30)
    assert widget.result is not None


def test_selecting_a_row_pans_to_its_point(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer)
    table = widget.table
    table.table.selectRow(table.row_of_point(2))
    center = viewer.scene.camera.center[-2:]
    np.testing.assert_allclose(center, viewer.layers["pois"].data[2])


def test_buttons_are_disabled_when_they_cannot_act(make_napari_viewer, qtbot):
    from helpers import texture

    viewer = make_napari_viewer()
    widget = open_widget(viewer)
    assert not widget.run_button.enabled  # no layers yet
    base = texture((120, 120))
    viewer.add_image(base, name="before")
    viewer.add_image(np.roll(base, SHIFT, axis=(0, 1)), name="after")
    assert not widget.run_button.enabled  # no points
    viewer.add_points([[60.0, 60.0]], name="pois")
    assert widget.run_button.enabled
    assert not widget.undo_button.enabled
    register, fields = widget.register, widget.fields
    assert not register.fit_button.enabled
    assert not register.apply_button.enabled
    assert not fields.field_button.enabled
    run_and_wait(widget)
    assert register.fit_button.enabled and fields.field_button.enabled
    assert not register.apply_button.enabled  # no fit yet
    viewer.layers["pois"].add([[50.0, 50.0]])
    widget.wait_until_done(30)
    assert widget.undo_button.enabled
    widget.undo()
    widget.wait_until_done(30)
    assert not widget.undo_button.enabled


def test_one_name_for_the_plugin():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-normxcorr")
    assert manifest.display_name == "napari-normxcorr"
    (command,) = [
        c for c in manifest.contributions.commands if "widget" in c.id
    ]
    (widget,) = manifest.contributions.widgets
    assert command.title == widget.display_name == "Match points (NCC)"


def test_closing_while_drawing_leaves_no_output_hidden(
    viewer_with_pair, qtbot
):
    """Outputs are added hidden and shown a turn later: closing the
    widget between the two shows them, rather than leaving them off."""
    viewer = viewer_with_pair
    widget = pair_widget(viewer)
    qtbot.wait(10)  # docked: the widget watches its dock

    def outputs():
        return [layer for layer in viewer.layers if is_output(layer)]

    widget.run()
    qtbot.waitUntil(
        lambda: any(not layer.visible for layer in outputs()), timeout=30000
    )
    close_dock(widget, qtbot)
    qtbot.wait(50)
    assert outputs()
    assert [layer.name for layer in outputs() if not layer.visible] == []
