"""The plots dock: the selected track against time and the last run's
histograms by status, following the selection (read back from the
plotted artists)."""

import sys

import numpy as np
import pytest

from helpers import live_widget, open_widget
from napari_normxcorr._napari.legend import STATUS_COLORS
from napari_normxcorr._napari.plots import PLOTS_DOCK
from napari_normxcorr.matching._result import Status
from test_tracking_widget import (
    FRAMES,
    GIVEN,
    drift,
    points_layer_data,
    select_summary_of,
)

pytest.importorskip("matplotlib")


def bar_totals(axes):
    """Per status group (the legend label), the values in its bars
    (stacked bars: each patch is as high as its own count)."""
    return {
        container.patches[0].get_label(): int(
            sum(patch.get_height() for patch in container.patches)
        )
        for container in axes.containers
    }


def vertical_lines(axes):
    return [line.get_xdata()[0] for line in axes.lines]


def test_histograms_follow_the_run_and_the_selection(viewer_with_pair, qtbot):
    viewer = viewer_with_pair
    widget = live_widget(viewer)
    plots = widget.show_plots()
    assert PLOTS_DOCK in viewer.window.dock_widgets
    assert widget.show_plots() is plots  # one dock
    scores = plots.axes["scores"]
    assert bar_totals(scores) == {"ok": 3}
    container = scores.containers[0]
    np.testing.assert_allclose(
        container.patches[0].get_facecolor(), STATUS_COLORS[Status.OK]
    )
    assert vertical_lines(scores) == []
    widget.table.table.selectRow(widget.table.row_of_point(1))
    assert vertical_lines(scores) == [pytest.approx(widget.result.score[1])]
    uncertainties = plots.axes["uncertainties"]
    assert vertical_lines(uncertainties) == [
        pytest.approx(widget.result.uncertainty[1])
    ]
    # A point added off the texture: a low score, and the bars follow.
    layer = viewer.layers["pois"]
    layer.data = np.vstack([layer.data, [[2.0, 2.0]]])
    widget.wait_until_done(30)
    assert bar_totals(plots.axes["scores"]) == {"ok": 3, "low score": 1}


@pytest.fixture
def tracked(make_napari_viewer, qtbot):
    from test_tracking_widget import drifting_series

    viewer = make_napari_viewer()
    image = viewer.add_image(drifting_series(), name="time-lapse")
    points = viewer.add_points(points_layer_data(), name="pois")
    widget = open_widget(viewer)
    widget.template_layer.value = image
    widget.points_layer.value = points
    widget.search_radius.value = (25, 25)
    widget.tracking.track_button.native.click()
    widget.tracking.wait_until_done(30)
    return viewer, widget


def test_track_curves_follow_the_selected_track(tracked):
    _, widget = tracked
    plots = widget.show_plots()
    displacement, score = plots.axes["displacement"], plots.axes["score"]
    assert len(displacement.lines) == 0
    for point in (1, 2):
        select_summary_of(widget.tracking, point)
        rows, cols = displacement.lines[0], displacement.lines[1]
        assert rows.get_label() == "Δ row"
        np.testing.assert_array_equal(rows.get_xdata(), np.arange(FRAMES))
        truth = np.array([drift(t) for t in range(FRAMES)])
        np.testing.assert_allclose(rows.get_ydata(), truth[:, 0], atol=0.05)
        np.testing.assert_allclose(cols.get_ydata(), truth[:, 1], atol=0.05)
        np.testing.assert_allclose(
            score.lines[0].get_ydata(), widget.tracking.result.score[point]
        )
        assert displacement.get_title() == f"track {point}"
    assert len(GIVEN) == 3


def test_the_dock_goes_with_the_widget(viewer_with_pair, qtbot):
    from test_widget_lifecycle import close_dock

    viewer = viewer_with_pair
    widget = open_widget(viewer)
    qtbot.wait(10)  # docked: the widget watches its dock
    followers = len(widget.session.selected)
    widget.show_plots()
    assert len(widget.session.selected) == followers + 1
    assert PLOTS_DOCK in viewer.window.dock_widgets
    close_dock(widget, qtbot)
    assert PLOTS_DOCK not in viewer.window.dock_widgets
    # It no longer follows the session.
    assert len(widget.session.selected) == followers


def test_without_matplotlib_a_notification_says_how(
    viewer_with_pair, qtbot, monkeypatch
):
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", shown.append
    )
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_qtagg", None)
    widget = open_widget(viewer_with_pair)
    assert widget.show_plots() is None
    assert shown == ["The plots need matplotlib: pip install matplotlib"]
    assert PLOTS_DOCK not in viewer_with_pair.window.dock_widgets
