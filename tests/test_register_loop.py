"""The Register tab closes the loop: a fit loaded from its JSON guides
Refine and Apply; a fit that cannot be made says what can; exact fits
say so."""

import numpy as np
import pytest

from helpers import choose, open_widget, run_and_wait
from napari_normxcorr import TransformFit, fit_transform
from napari_normxcorr._napari.fit_advice import (
    rotation_and_scale,
    two_motions_note,
)
from test_register_widget import (
    BAD,
    grid_points,
    pair_viewer,
    run_pair,
    similarity,
)


@pytest.fixture
def notes(monkeypatch):
    """Messages of napari's show_warning and show_info, collected."""
    shown = []
    for name in ("show_warning", "show_info"):
        monkeypatch.setattr(f"napari.utils.notifications.{name}", shown.append)
    return shown


def matched_pair(viewer, matrix, template_radius=15):
    """The widget on the planted pair through `matrix`, after a run."""
    pair_viewer(viewer, matrix)
    return run_pair(viewer, template_radius)


def test_a_loaded_fit_guides_refine_apply_and_warp(
    make_napari_viewer, qtbot, tmp_path
):
    """A fit saved from exact pairs, loaded after a run: it is the
    current fit, stays when the matches change, and Refine, Apply and the
    warped target work from it."""
    matrix = similarity(3.0, 1.02, (4, -6))
    viewer = make_napari_viewer()
    widget = matched_pair(viewer, matrix)
    points = grid_points()[[0, 4, 20]]
    saved = fit_transform(points, (points @ matrix[:2, :2].T) + matrix[:2, 2])
    path = tmp_path / "transform.json"
    saved.to_json(path)
    section = widget.register
    assert section.current_fit is None
    loaded = section.load_fit(path)
    assert section.current_fit is loaded
    np.testing.assert_array_equal(loaded.matrix, saved.matrix)
    assert section.fit_label.value == (
        "affine: 3/3 inliers, exact (3 points, no residual) "
        "(from transform.json)"
    )
    assert section.apply_button.enabled and section.warp_button.enabled
    # Exported again: the same fit, without the run's unrelated rows.
    section.export_json(tmp_path / "again.json")
    again = TransformFit.from_json(tmp_path / "again.json")
    np.testing.assert_array_equal(again.matrix, saved.matrix)
    assert section.apply()
    warped = section.add_warped()
    assert warped is not None and warped.data.shape == (240, 260)
    section.undo_apply()
    assert section.refine() is not None
    widget.wait_until_done(60)
    fit = section.current_fit
    assert fit is not loaded
    np.testing.assert_allclose(fit.matrix, matrix, atol=0.01)
    assert list(np.flatnonzero(~fit.inliers)) == [BAD]
    assert section.fit_label.value.startswith("affine: 24/25 inliers, RMS")


def test_a_bad_fit_file_is_refused(viewer_with_pair, qtbot, notes, tmp_path):
    path = tmp_path / "transform.json"
    path.write_text('{"model": "affine"}')
    section = open_widget(viewer_with_pair).register
    assert section.load_fit(path) is None
    assert notes[-1].startswith("Cannot load the fit: ")
    assert "not a transform file" in notes[-1]
    assert section.current_fit is None


def test_too_few_matches_switch_to_the_model_they_support(
    viewer_with_pair, qtbot, notes
):
    """Two ok matches: affine is refused, naming the count and the model
    they support; the model becomes similarity, whose fit is exact."""
    layers = viewer_with_pair.layers
    layers["pois"].data = [[60.0, 70.0], [100.5, 120.25]]
    widget = open_widget(viewer_with_pair)
    choose(widget, layers["before"], layers["after"], layers["pois"])
    run_and_wait(widget)
    section = widget.register
    assert section.model.value == "affine"
    assert section.fit() is None
    assert "needs at least 3 matched points, got 2 ok (of 2)" in notes[-1]
    assert "The model is now similarity: press Fit" in notes[-1]
    assert section.model.value == "similarity"
    fit = section.fit()
    assert fit.exact
    assert section.fit_label.value == (
        "similarity: 2/2 inliers, exact (2 points, no residual)"
    )
    assert "nan" not in section.fit_label.value.lower()


def test_two_motions_from_a_turn_are_explained(
    make_napari_viewer, qtbot, notes
):
    """10 degrees and x1.08: about half the matches are two motions; the
    fit's notification says why and that Refine removes it, and Refine
    does."""
    viewer = make_napari_viewer()
    widget = matched_pair(viewer, similarity(10.0, 1.08, (4, -6)))
    before = np.count_nonzero(widget.result.status == "two motions")
    assert before >= 5
    widget.register.fit()
    note = notes[-1]
    assert f"{before} of 25 matches are 'two motions'" in note
    assert "turned by 10.0 degrees and scaled by 1.08" in note
    assert note.endswith("Refine through the fit removes it.")
    widget.register.refine()
    widget.wait_until_done(60)
    assert not np.any(widget.result.status == "two motions")


def test_rotation_and_scale_of_a_similarity():
    """The polar decomposition reads the turn and scale back."""
    degrees, scale = rotation_and_scale(similarity(-30.0, 1.25, (3, 4)))
    assert degrees == pytest.approx(30.0)
    assert scale == pytest.approx(1.25)


def test_no_note_for_a_small_turn(registered_result):
    """Many two-motions rows but no turn or scale: no note."""
    assert two_motions_note(registered_result, np.eye(3)) is None


@pytest.fixture
def registered_result():
    from napari_normxcorr import MatchResult, Status

    n = 10
    status = np.array([Status.TWO_MOTIONS] * 5 + [Status.OK] * 5, object)
    nan = np.full((n, 2), np.nan)
    return MatchResult(
        points=np.zeros((n, 2)),
        image_points=nan,
        matched=nan,
        offset=nan,
        score=np.ones(n),
        second_score=np.ones(n),
        distinctiveness=np.zeros(n),
        consistency=np.zeros(n),
        refined=np.ones(n, bool),
        transform_residual=np.full(n, np.nan),
        transform_inlier=np.zeros(n, bool),
        status=status,
    )
