"""The widget's Register section: fit, refine, overlay, export, compare."""

import json

import numpy as np
import pytest
from scipy import ndimage

from helpers import (
    SHIFT,
    choose,
    open_widget,
    rgb_texture,
    run_and_wait,
    texture,
)
from napari_normxcorr import Status
from napari_normxcorr._napari.outputs import STATUS_COLORS

# The planted point: its patch of the target was replaced by the texture
# of a transform shifted by BAD_SHIFT, so it matches well but off the fit.
BAD = 12
BAD_SHIFT = (0.0, 7.0)


def similarity(degrees, scale, shift, centre=(120.0, 130.0)):
    """Homogeneous matrix: rotate and scale about `centre`, then shift."""
    a = np.deg2rad(degrees)
    linear = scale * np.array(
        [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    )
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = np.asarray(shift) + centre - linear @ centre
    return matrix


def resample(image, matrix):
    """The image seen through `matrix`: output(M p) = image(p)."""
    inverse = np.linalg.inv(matrix)
    return ndimage.affine_transform(
        image, inverse[:2, :2], inverse[:2, 2], order=3, mode="nearest"
    )


def grid_points():
    """A 5 x 5 grid of points of interest, in template pixels."""
    rows, cols = np.meshgrid(
        np.linspace(50, 190, 5), np.linspace(50, 210, 5), indexing="ij"
    )
    return np.c_[rows.ravel(), cols.ravel()]


def planted_pair(matrix):
    """Template texture and its target through `matrix`, where the patch
    around point BAD went BAD_SHIFT further."""
    base = texture((240, 260), seed=1)
    target = resample(base, matrix)
    shifted = matrix.copy()
    shifted[:2, 2] += BAD_SHIFT
    # Half way: the old and the new place of the point are both in it.
    centre = (shifted @ [*grid_points()[BAD], 1.0])[:2] - np.divide(
        BAD_SHIFT, 2
    )
    rows, cols = np.indices(target.shape)
    patch = np.hypot(rows - centre[0], cols - centre[1]) < 20
    return base, np.where(patch, resample(base, shifted), target)


def pair_viewer(viewer, matrix, template_place=None, target_place=None):
    """Add 'before', 'after' and 'pois' (on the template) to `viewer`."""
    template_place = template_place or {}
    base, target = planted_pair(matrix)
    template = viewer.add_image(base, name="before", **template_place)
    viewer.add_image(target, name="after", **(target_place or {}))
    world = [template.data_to_world(p) for p in grid_points()]
    viewer.add_points(np.array(world), name="pois", size=4)
    return viewer


def run_pair(viewer, template_radius=12):
    """The widget on the pair, after a run."""
    widget = open_widget(viewer)
    layers = viewer.layers
    choose(widget, layers["before"], layers["after"], layers["pois"])
    widget.template_radius.value = template_radius
    # The planted point is unlike its neighbours too; here the transform
    # is to catch it (tests/test_verdicts.py covers the neighbours).
    widget.neighbours.value = False
    run_and_wait(widget)
    return widget


@pytest.fixture
def registered(make_napari_viewer):
    """A rotated and scaled pair, matched and fitted (affine)."""
    viewer = pair_viewer(make_napari_viewer(), similarity(1.5, 1.01, (4, -6)))
    widget = run_pair(viewer)
    widget.register.fit_button.native.click()
    assert widget.register.current_fit is not None
    return viewer, widget


@pytest.fixture
def warnings(monkeypatch):
    """Messages of napari's show_warning, collected."""
    shown = []
    monkeypatch.setattr(
        "napari.utils.notifications.show_warning", shown.append
    )
    return shown


def test_fit_flags_the_off_model_match(registered, qtbot):
    """Label, colours, features and table follow the fit; the planted
    match is a transform outlier."""
    viewer, widget = registered
    fit = widget.register.current_fit
    assert fit.rms < 0.1
    assert list(np.flatnonzero(~fit.inliers)) == [BAD]
    text = widget.register.fit_label.value
    assert text.startswith("affine: 24/25 inliers, RMS 0.0")
    status = [str(s) for s in widget.result.status]
    assert status == ["ok"] * BAD + ["transform outlier"] + ["ok"] * 12
    matched = viewer.layers["pois matched"]
    residual = matched.features["transform_residual"]
    np.testing.assert_allclose(residual, fit.residuals)
    assert residual[BAD] == pytest.approx(7.0, abs=0.3)
    np.testing.assert_allclose(
        matched.face_color[BAD], STATUS_COLORS[Status.TRANSFORM_OUTLIER]
    )
    table = widget.table
    column = table.headers.index("vs transform (px)")
    row = table.row_of_point(BAD)
    assert float(table.text(row, column)) == pytest.approx(
        residual[BAD], abs=1e-3
    )


def test_a_new_fit_judges_earlier_outliers_again(registered, qtbot):
    """The affine fit's outlier is ok again for a translation fit (whose
    threshold, rotation left in, takes every row); affine again gives the
    first fit back."""
    _, widget = registered
    section = widget.register
    first = section.current_fit
    section.model.value = "translation"
    loose = section.fit()
    assert loose.inliers.all()
    assert str(widget.result.status[BAD]) == "ok"
    section.model.value = "affine"
    again = section.fit()
    np.testing.assert_array_equal(again.inliers, first.inliers)
    np.testing.assert_allclose(again.matrix, first.matrix)


def test_fit_before_a_run_notifies(viewer_with_pair, qtbot, warnings):
    widget = open_widget(viewer_with_pair)
    assert widget.register.fit() is None
    assert warnings == ["Run the matching first: there are no matches."]


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[60.0, 70.0], [100.5, 120.25]], "needs at least 3"),
        ([[40.0, 40.0], [60.0, 60.0], [80.0, 80.0]], "do not determine"),
    ],
)
def test_fit_to_unusable_matches_notifies(
    viewer_with_pair, qtbot, warnings, points, message
):
    """Too few or collinear matches: a warning, nothing changes."""
    layers = viewer_with_pair.layers
    layers["pois"].data = points
    widget = open_widget(viewer_with_pair)
    choose(widget, layers["before"], layers["after"], layers["pois"])
    run_and_wait(widget)
    result = widget.result
    assert widget.register.fit() is None
    assert message in warnings[-1]
    assert widget.result is result
    assert set(map(str, result.status)) == {"ok"}
    assert np.isnan(result.transform_residual).all()
    assert widget.register.fit_label.value == "No transform fitted"


def test_no_fit_once_a_layer_of_the_matches_is_gone(
    registered, qtbot, warnings
):
    viewer, widget = registered
    viewer.layers.remove("pois")
    count = len(viewer.layers)
    assert widget.register.fit() is None
    assert widget.register.refine() is None
    assert not widget.register.apply()
    assert all("removed: run again" in w for w in warnings)
    assert len(viewer.layers) == count


def test_a_live_edit_voids_the_fit(registered, qtbot, warnings):
    viewer, widget = registered
    data = viewer.layers["pois"].data.copy()
    data[0] += 1.0
    viewer.layers["pois"].data = data
    widget.wait_until_done(30)
    assert widget.register.current_fit is None
    assert "fit again" in widget.register.fit_label.value
    assert not widget.register.apply()
    assert warnings == ["Fit a transform first."]


def test_apply_overlays_the_target_and_undo_restores_it(
    make_napari_viewer, qtbot
):
    """With scale and translate on both layers, each match lands on its
    point in world; the data never change; Undo is exact."""
    viewer = pair_viewer(
        make_napari_viewer(),
        similarity(1.5, 1.01, (4, -6)),
        template_place={"scale": (1.5, 1.5), "translate": (5, -3)},
        target_place={"scale": (1.5, 1.5), "translate": (10, -5)},
    )
    widget = run_pair(viewer)
    section = widget.register
    fit = section.fit()
    target, template = viewer.layers["after"], viewer.layers["before"]
    data = {ly.name: np.array(ly.data, copy=True) for ly in viewer.layers}
    affine = np.array(target.affine.affine_matrix, copy=True)
    assert section.apply()
    ok = fit.inliers
    result = widget.result
    on_target = np.array([target.data_to_world(m) for m in result.matched])
    on_template = np.array([template.data_to_world(p) for p in result.points])
    # World = 1.5 template pixels: each match lands on its point but for
    # its residual, taken back into template pixels.
    back = (np.c_[result.matched, np.ones(25)] @ fit.inverse.T)[:, :2]
    np.testing.assert_allclose(
        np.linalg.norm(on_target - on_template, axis=1),
        1.5 * np.linalg.norm(back - result.points, axis=1),
        atol=1e-9,
    )
    assert np.abs(on_target[ok] - on_template[ok]).max() < 1.5 * 0.15
    # The matches are drawn through the moved target: onto their points.
    matched = viewer.layers["pois matched"].data
    np.testing.assert_allclose(matched, on_target)
    for layer in (template, target, viewer.layers["pois"]):
        np.testing.assert_array_equal(layer.data, data[layer.name])
    # A second Apply changes nothing; Undo goes back to the first affine.
    moved = np.array(target.affine.affine_matrix, copy=True)
    assert section.apply()
    np.testing.assert_allclose(target.affine.affine_matrix, moved, atol=1e-9)
    assert section.undo_apply()
    assert np.array_equal(target.affine.affine_matrix, affine)
    np.testing.assert_allclose(
        viewer.layers["pois matched"].data,
        [target.data_to_world(m) for m in result.matched],
    )
    assert not section.undo_apply_button.enabled


def test_projective_fit_is_not_applied(registered, qtbot, warnings):
    viewer, widget = registered
    section = widget.register
    section.model.value = "projective"
    assert section.fit() is not None
    target = viewer.layers["after"]
    affine = np.array(target.affine.affine_matrix, copy=True)
    assert not section.apply()
    assert "projective" in warnings[-1]
    assert np.array_equal(target.affine.affine_matrix, affine)


def test_export_json_round_trip(registered, qtbot, tmp_path):
    _, widget = registered
    fit = widget.register.current_fit
    path = tmp_path / "fit.json"
    widget.register.export_json(path)
    record = json.loads(path.read_text())
    assert record["model"] == "affine"
    np.testing.assert_allclose(record["matrix"], fit.matrix)
    np.testing.assert_allclose(record["inverse"], fit.inverse)
    assert record["inliers"] == fit.inliers.tolist()
    np.testing.assert_allclose(record["residuals"], fit.residuals)
    assert record["rms"] == fit.rms
    assert record["threshold"] == fit.threshold
    np.testing.assert_allclose(record["points"], widget.result.points)
    np.testing.assert_allclose(record["matched"], widget.result.matched)
    assert record["status"][BAD] == "transform outlier"
    assert (record["template"], record["target"]) == ("before", "after")


def test_export_before_a_fit_raises(viewer_with_pair, qtbot, tmp_path):
    widget = open_widget(viewer_with_pair)
    with pytest.raises(ValueError, match="Fit a transform first"):
        widget.register.export_json(tmp_path / "fit.json")


@pytest.mark.parametrize("lazy", [False, True])
def test_warped_target_lies_on_the_template(make_napari_viewer, qtbot, lazy):
    """Sampled where the template's points are in world, the warped
    target shows the template's values; dask data stay lazy."""
    viewer = pair_viewer(
        make_napari_viewer(),
        similarity(1.5, 1.01, (4, -6)),
        template_place={"scale": (2, 2), "translate": (5, -3)},
        target_place={"scale": (2, 2), "translate": (5, -3)},
    )
    if lazy:
        import dask.array as da

        target = viewer.layers["after"]
        target.data = da.from_array(np.asarray(target.data), chunks=64)
    widget = run_pair(viewer)
    section = widget.register
    section.fit()
    layer = section.add_warped()
    assert layer.name == "after warped"
    assert isinstance(layer.data, np.ndarray) != lazy
    template = viewer.layers["before"]
    inliers = section.current_fit.inliers
    points = widget.result.points[inliers]
    world = [template.data_to_world(p) for p in points]
    at = np.array([layer.world_to_data(w) for w in world])
    np.testing.assert_allclose(at, points, atol=1e-9)
    values = np.asarray(layer.data)
    warped = ndimage.map_coordinates(values, at.T, order=1)
    expected = template.data[tuple(np.rint(points).astype(int).T)]
    # Unit-variance texture, interpolated linearly: a few hundredths.
    assert np.abs(warped - expected).mean() < 0.05
    # Inside the target, away from the planted patch: the same picture.
    rows, cols = np.indices(values.shape)
    bad = grid_points()[BAD]
    far = np.hypot(rows - bad[0], cols - bad[1]) > 30
    inside = np.isfinite(values) & far
    inside[:20] = inside[-20:] = inside[:, :20] = inside[:, -20:] = False
    similar = np.corrcoef(values[inside], template.data[inside])[0, 1]
    assert similar > 0.99
    # Just above the template, under the points.
    layers = viewer.layers
    assert layers.index(layer) == layers.index(template) + 1
    # A second call updates the layer.
    assert section.add_warped() == layer
    assert sum(ly.name == "after warped" for ly in layers) == 1


def test_warped_rgb_target_keeps_its_colours(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rgb = rgb_texture((120, 120), seed=4)
    viewer.add_image(rgb, name="before", rgb=True)
    viewer.add_image(np.roll(rgb, SHIFT, axis=(0, 1)), name="after", rgb=True)
    viewer.add_points([[40.0, 40.0], [60.0, 80.0], [85, 50]], name="pois")
    widget = run_pair(viewer, template_radius=10)
    widget.register.model.value = "translation"
    fit = widget.register.fit()
    np.testing.assert_allclose(fit.matrix[:2, 2], SHIFT, atol=1e-6)
    layer = widget.register.add_warped()
    assert layer.rgb
    inside = (slice(10, -10), slice(10, -10))
    np.testing.assert_allclose(layer.data[inside], rgb[inside], atol=1e-3)


def test_side_by_side_template_left_target_right_with_lines(registered, qtbot):
    """One canvas: the template where it was, the target (a second layer
    on its data) right of it, a line from each point to its match ending
    on the matched pixel of the moved target; the target side hidden
    meanwhile, and everything as it was afterwards."""
    viewer, widget = registered
    before = {
        ly.name: (ly.visible, np.array(ly.affine.affine_matrix))
        for ly in viewer.layers
    }
    template, target = viewer.layers["before"], viewer.layers["after"]
    widget.register.side_by_side.value = True
    copy = viewer.layers["after (side by side)"]
    assert copy.data is target.data
    left = np.asarray(template.extent.world)[:, -1]
    right = np.asarray(copy.extent.world)[:, -1]
    assert (
        right[0] > left[1]
    )  # the target's left edge past the template's right
    assert not target.visible and not viewer.layers["pois matched"].visible
    lines = viewer.layers["pairs (side by side)"]
    result = widget.result
    kept = np.flatnonzero(np.isfinite(result.matched).all(axis=1))
    assert len(lines.data) == len(kept)
    for line, k in zip(lines.data, kept):
        np.testing.assert_allclose(
            line[0], template.data_to_world(result.points[k]), atol=1e-6
        )
        # The line ends where the copy shows the matched target pixel.
        np.testing.assert_allclose(
            line[1], copy.data_to_world(result.matched[k]), atol=1e-6
        )
    widget.register.side_by_side.value = False
    names = [ly.name for ly in viewer.layers]
    assert "after (side by side)" not in names
    assert "pairs (side by side)" not in names
    for layer in viewer.layers:
        visible, affine = before[layer.name]
        assert layer.visible == visible
        np.testing.assert_array_equal(layer.affine.affine_matrix, affine)


def test_time_lapse_fits_in_the_matched_axes(
    make_napari_viewer, qtbot, warnings
):
    """Points in several frames: a 2-D fit of their (row, col); no overlay
    of 3-D layers through it."""
    viewer = make_napari_viewer()
    frames = np.stack([texture((100, 110), seed=s) for s in range(2)])
    axes = ("t", "y", "x")  # time first: matched frame by frame
    viewer.add_image(frames, name="before", axis_labels=axes)
    moved = np.roll(frames, (2, 3), axis=(1, 2))
    viewer.add_image(moved, name="after", axis_labels=axes)
    points = [[0, 40, 40], [0, 60, 70], [1, 40, 70], [1, 60, 45]]
    viewer.add_points(points, name="pois")
    widget = run_pair(viewer, template_radius=10)
    section = widget.register
    section.model.value = "translation"
    fit = section.fit()
    np.testing.assert_allclose(fit.matrix[:2, 2], [2, 3], atol=1e-6)
    assert not section.apply()
    assert "2-D template and target layers" in warnings[-1]


def test_refine_matches_through_the_fit(make_napari_viewer, qtbot):
    """3 degrees and 2 %: guided matching through the fit keeps the
    matches on the model (within a hundredth of a pixel; the affine warp
    of plain matching already follows such a turn, a shift alone was off
    by tenths)."""
    pytest.importorskip(
        "napari_normxcorr.registration._register",
        reason="register() not available",
    )
    matrix = similarity(3.0, 1.02, (4, -6))
    viewer = pair_viewer(make_napari_viewer(), matrix)
    widget = run_pair(viewer, template_radius=15)
    section = widget.register
    first = section.fit()
    before = viewer.layers["pois matched"].data.copy()
    worker = section.refine()
    assert worker is not None
    assert widget.running
    widget.wait_until_done(60)
    fit = section.current_fit
    assert fit is not first
    assert fit.rms < 0.01
    assert list(np.flatnonzero(~fit.inliers)) == [BAD]
    np.testing.assert_allclose(fit.matrix, matrix, atol=0.01)
    result = widget.result
    assert len(result) == 25
    np.testing.assert_allclose(result.points, grid_points())
    assert str(result.status[BAD]) == "transform outlier"
    # The output layers show the guided matches.
    matched = viewer.layers["pois matched"].data
    np.testing.assert_allclose(matched, result.matched)
    assert not np.array_equal(matched, before)
    assert section.fit_label.value.startswith("affine: 24/25 inliers")


def test_a_failed_refinement_is_reported(registered, qtbot, monkeypatch):
    """An engine error becomes a notification; the fit and matches stay."""
    _, widget = registered

    def broken(*args, **kwargs):
        raise ValueError("round 1 left 0 good matches")

    monkeypatch.setattr(
        "napari_normxcorr.registration._register.register", broken
    )
    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    fit, result = widget.register.current_fit, widget.result
    widget.register.refine()
    widget.wait_until_done(30)
    assert errors == ["Matching failed: round 1 left 0 good matches"]
    assert widget.register.current_fit is fit
    assert widget.result is result
    assert widget.register.refine_button.enabled
