"""Pairs by hand: clicks on the template and the target (simulated, as
affinder's tests do, by assigning the layers' data) fit a transform that
guides Refine of every point."""

import numpy as np
import pytest

from helpers import choose, open_widget, run_and_wait
from napari_normxcorr import fit_transform
from napari_normxcorr._napari.pairs import TARGET_PAIRS, TEMPLATE_PAIRS
from test_register_widget import grid_points, pair_viewer, similarity

# Rotated and scaled too much for plain matching: every match fails.
TURN = similarity(30.0, 1.25, (4, -6))
# Three points of the grid, clicked on the template.
CLICKED = grid_points()[[6, 8, 16]]


def click(layer, position):
    """What a click in add mode does to a Points layer."""
    layer.data = np.vstack([layer.data, position])


def through(matrix, points):
    return points @ matrix[:2, :2].T + matrix[:2, 2]


@pytest.fixture
def turned(make_napari_viewer, qtbot):
    """The 30 degree, x1.25 pair after a run, in pairs-by-hand mode."""
    viewer = pair_viewer(make_napari_viewer(), TURN)
    widget = open_widget(viewer)
    layers = viewer.layers
    choose(widget, layers["before"], layers["after"], layers["pois"])
    widget.template_radius.value = 15
    run_and_wait(widget)
    widget.register.pairs.mode.value = True
    return viewer, widget


def test_three_pairs_by_hand_register_a_30_degree_pair(turned, qtbot):
    """Every plain match fails; three pairs clicked within a third of a
    pixel fit an exact affine, and Refine through it registers the pair
    to within 0.1 px."""
    viewer, widget = turned
    assert not np.any(widget.result.status == "ok")
    section = widget.register
    layers = viewer.layers
    template, target = layers[TEMPLATE_PAIRS], layers[TARGET_PAIRS]
    rng = np.random.default_rng(0)
    for point in CLICKED:
        assert layers.selection.active == template
        assert layers["before"].visible and not layers["after"].visible
        click(template, point)
        assert layers.selection.active == target
        assert layers["after"].visible and not layers["before"].visible
        click(target, through(TURN, point) + rng.uniform(-0.3, 0.3, 2))
    np.testing.assert_array_equal(template.features["pair"], [1, 2, 3])
    assert section.pairs.pairs_label.value == "3 pairs (3 for the model)"
    section.pairs.fit_button.native.click()
    fit = section.current_fit
    assert section.fit_label.value == (
        "affine: 3/3 inliers, exact (3 points, no residual) "
        "(from pairs by hand)"
    )
    expected = fit_transform(template.data, target.data, robust=False)
    np.testing.assert_allclose(fit.matrix, expected.matrix)
    section.refine()
    widget.wait_until_done(60)
    refined = section.current_fit
    assert refined is not fit
    assert np.count_nonzero(widget.result.status == "ok") >= 12
    inside = grid_points()[refined.inliers]
    error = np.hypot(*(refined(inside) - through(TURN, inside)).T)
    assert error.max() < 0.1
    # Leaving the mode shows both images again.
    section.pairs.mode.value = False
    assert layers["before"].visible and layers["after"].visible


def test_undo_takes_back_the_last_pair(turned, qtbot, monkeypatch):
    viewer, widget = turned
    pairs = widget.register.pairs
    template, target = pairs.layers()
    for point in CLICKED[:2]:
        click(template, point)
        click(target, through(TURN, point))
    click(template, CLICKED[2])  # waiting for its counterpart
    assert pairs.pairs()[0].shape == (2, 2)
    assert pairs.undo()
    assert len(template.data) == len(target.data) == 2
    assert viewer.layers.selection.active == template
    pairs.undo_button.native.click()
    assert len(template.data) == len(target.data) == 1
    np.testing.assert_array_equal(template.data, CLICKED[:1])
    # One pair is too few for an affine: the notification says so.
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", shown.append
    )
    assert pairs.fit() is None
    assert "needs at least 3 matched points, got 1" in shown[-1]
    assert shown[-1].endswith("click more pairs.")
    assert pairs.undo()
    assert not pairs.undo()
    assert not pairs.fit_button.enabled


def test_pairs_layers_are_never_picked_as_points(turned, qtbot):
    viewer, widget = turned
    assert widget.points_layer.value == viewer.layers["pois"]
    widget.register.pairs.mode.value = False
    widget.register.pairs.mode.value = True
    assert [layer.name for layer in viewer.layers].count(TEMPLATE_PAIRS) == 1
