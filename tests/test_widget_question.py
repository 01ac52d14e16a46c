"""Asking the user's question: how far can a point move? The search
radius follows; samples bring radii that suit them; a run whose peaks
press against the search border says what would fit."""

import numpy as np
import pytest

from helpers import SHIFT, open_widget, pair_widget, run_and_wait


def test_search_radius_follows_max_displacement(viewer_with_pair, qtbot):
    widget = pair_widget(viewer_with_pair)
    widget.template_radius.value = 10
    widget.max_displacement.value = (3, 60)
    assert tuple(widget.search_radius.value) == (13, 70)
    # A new template radius keeps the displacement asked for.
    widget.template_radius.value = 12
    assert tuple(widget.search_radius.value) == (15, 72)
    # Scripts may still set the search radius: the question follows.
    widget.search_radius.value = (20, 30)
    assert tuple(widget.max_displacement.value) == (8, 18)
    assert widget.match_options().search_radius == (20, 30)


def test_many_peaks_on_the_border_name_a_displacement_that_fits(
    viewer_with_pair, qtbot, monkeypatch
):
    """The shift is (4, -6); room for 3 rows puts every peak on the
    border: the notification names a max displacement that finds it."""
    caught = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", caught.append
    )
    widget = pair_widget(viewer_with_pair)
    widget.template_radius.value = 10
    widget.max_displacement.value = (3, 7)
    run_and_wait(widget)
    assert set(widget.result.status) == {"peak on search border"}
    (message,) = caught
    assert "3 of 3 matches peak on the search border" in message
    assert "Try max displacement (6, 7) px" in message
    widget.max_displacement.value = (6, 7)
    run_and_wait(widget)
    assert list(widget.result.status) == ["ok"] * 3
    np.testing.assert_allclose(widget.result.offset, [SHIFT] * 3, atol=1e-6)
    assert len(caught) == 1


@pytest.mark.parametrize(
    ("sample", "template", "displacement"),
    [("stereo", 10, (3, 60)), ("deformed", 12, (12, 12))],
)
def test_samples_bring_radii_that_suit_them(
    make_napari_viewer, qtbot, sample, template, displacement
):
    if sample == "stereo":
        pytest.importorskip("skimage")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-normxcorr", sample)
    widget = open_widget(viewer)
    assert widget.template_radius.value == template
    assert tuple(widget.max_displacement.value) == displacement


def test_stereo_sample_first_run_with_its_defaults(make_napari_viewer, qtbot):
    """What a new user gets: open the sample, open the widget, Run."""
    pytest.importorskip("skimage")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-normxcorr", "stereo")
    widget = open_widget(viewer)
    run_and_wait(widget)
    status = [str(s) for s in widget.result.status]
    assert "peak on search border" not in status
    assert status.count("ok") >= 5
    # Matches stay on their row (a rectified pair), up to ~60 px left.
    ok = np.array(status) == "ok"
    assert np.abs(widget.result.offset[ok, 0]).max() < 1.5
    assert (widget.result.offset[ok, 1] < 0).all()


def test_the_thresholds_are_folded_away(viewer_with_pair, qtbot):
    from superqt import QCollapsible

    widget = open_widget(viewer_with_pair)
    (advanced,) = widget.tabs.widget(0).findChildren(QCollapsible)
    assert advanced.text() == "Advanced"
    for name in (
        "search_radius",
        "subpixel",
        "min_score",
        "min_peak_ratio",
        "max_motion_gap",
        "max_uncertainty",
        "max_consistency_error",
        "neighbours",
        "template_mask",
        "image_mask",
    ):
        assert advanced.isAncestorOf(getattr(widget, name).native), name
    for name in ("template_radius", "max_displacement", "run_button"):
        assert not advanced.isAncestorOf(getattr(widget, name).native)
