"""Verdicts against ground truth: ambiguous, edge only, outlier, and the
peak ratio and uncertainty they rest on."""

import numpy as np
import pytest
from scipy import ndimage

from helpers import texture
from napari_normxcorr import Status, match_points
from napari_normxcorr._verdicts import judge_neighbours


def test_repetitive_texture_is_ambiguous():
    # A 12-pixel tile repeated: every period scores as well as the truth.
    tile = texture((12, 12), seed=3)
    wallpaper = np.tile(tile, (20, 20))
    shifted = np.roll(wallpaper, (2, 3), axis=(0, 1))
    points = [[100.0, 100.0], [130.0, 90.0]]
    # Surfaces of +-15 positions: the neighbouring periods are inside.
    result = match_points(
        wallpaper, shifted, points, template_radius=8, search_radius=23
    )
    assert set(result.status) == {Status.AMBIGUOUS}
    assert np.all(result.peak_ratio < 1.1)


def test_a_clear_peak_has_a_large_peak_ratio():
    before = texture((200, 200), seed=1)
    after = ndimage.shift(before, (2.3, -1.6), order=3, mode="wrap")
    result = match_points(
        before, after, [[100.0, 100.0]], template_radius=10, search_radius=20
    )
    assert result.status[0] == Status.OK
    gap = np.maximum(1 - result.score, 1e-4)  # the scores' precision
    expected = (1 - result.second_score) / gap
    np.testing.assert_allclose(result.peak_ratio, expected)
    assert result.peak_ratio[0] > 3


def test_an_edge_only_template_is_uncertain_along_the_edge():
    # A vertical edge (values change along columns only), moved down 3 px
    # and right 0.5 px: along rows nothing tells where it went.
    columns = np.arange(200.0)
    edge = np.tile(1 / (1 + np.exp(-(columns - 100) / 3)), (200, 1))
    moved = ndimage.shift(edge, (3, 0.5), order=3, mode="nearest")
    result = match_points(
        edge, moved, [[100.0, 100.0]], template_radius=10, search_radius=20
    )
    assert result.status[0] == Status.EDGE_ONLY
    assert result.uncertainty[0] > 1.0
    values, vectors = np.linalg.eigh(result.covariance[0])
    along = vectors[:, -1]  # the direction of the largest deviation
    assert abs(along[0]) > 0.99  # the edge runs along the rows
    # Across the edge the position is known well, and right.
    assert np.sqrt(values[0]) < 0.1
    assert result.offset[0, 1] == pytest.approx(0.5, abs=0.05)


def test_uncertainty_tracks_the_real_error_on_texture():
    rng = np.random.default_rng(4)
    before = texture((300, 300), seed=4)
    shift = (1.3, -2.6)
    after = ndimage.shift(before, shift, order=3, mode="wrap")
    before = before + rng.normal(0, 0.1, before.shape)
    after = after + rng.normal(0, 0.1, after.shape)
    points = rng.uniform(40, 260, size=(80, 2))
    result = match_points(
        before, after, points, template_radius=10, search_radius=20
    )
    ok = result.status == Status.OK
    assert ok.mean() > 0.9
    error = result.offset[ok] - shift
    predicted = np.sqrt(np.trace(result.covariance[ok], axis1=1, axis2=2))
    # Same order of magnitude: the RMS error within 3x of the RMS spread
    # the covariances predict.
    ratio = np.sqrt(np.mean(np.sum(error**2, axis=1))) / np.sqrt(
        np.mean(predicted**2)
    )
    assert 1 / 3 < ratio < 3


def _grid(spacing, low, high):
    axis = np.arange(low, high + 1, spacing, dtype=float)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def test_a_gross_outlier_is_caught_by_its_neighbours():
    before = texture((300, 300), seed=6)
    after = np.roll(before, (2, 3), axis=(0, 1))
    points = _grid(30.0, 60.0, 240.0)
    odd = int(np.argmin(np.linalg.norm(points - 150.0, axis=1)))
    # Where one point's texture went, the target moved 9 px further: its
    # match is right there, but unlike every neighbour's. The patch stays
    # clear of the neighbours' windows.
    r, c = points[odd].astype(int) + (11, 3)
    patch = (slice(r - 9, r + 10), slice(c - 9, c + 10))
    after[patch] = np.roll(before, (11, 3), axis=(0, 1))[patch]
    result = match_points(
        before, after, points, template_radius=8, search_radius=20
    )
    assert result.offset[odd] == pytest.approx((11, 3), abs=0.05)
    assert result.status[odd] == Status.OUTLIER
    assert result.neighbour_residual[odd] > 10
    others = np.delete(np.arange(len(points)), odd)
    assert np.all(result.status[others] == Status.OK)
    assert np.all(result.neighbour_residual[others] < 2)


def test_a_rotation_is_not_an_outlier_field():
    before = texture((300, 300), seed=7)
    angle = np.deg2rad(3)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    centre = np.array([150.0, 150.0])
    offset = centre - rotation @ centre
    after = ndimage.affine_transform(before, rotation, offset, order=3)
    points = _grid(25.0, 90.0, 210.0)
    result = match_points(
        before, after, points, template_radius=12, search_radius=30
    )
    assert np.all(result.status == Status.OK)
    # The offsets differ by over a pixel between neighbours: compared as
    # they are, without the affine trend, half the grid would be outliers.
    assert np.ptp(result.offset[:, 1]) > 5


def test_points_without_neighbours_are_never_outliers():
    before = texture((300, 300), seed=8)
    after = np.roll(before, (2, 3), axis=(0, 1))
    # Two points far apart, one of them moved elsewhere by a patch.
    points = np.array([[60.0, 60.0], [240.0, 240.0]])
    # The second point went 9 px further: nobody near it says otherwise.
    patch = (slice(242, 261), slice(234, 253))
    after[patch] = np.roll(before, (11, 3), (0, 1))[patch]
    result = match_points(
        before, after, points, template_radius=8, search_radius=20
    )
    assert list(result.status) == [Status.OK, Status.OK]
    assert result.offset[1] == pytest.approx((11, 3), abs=0.05)
    assert np.isnan(result.neighbour_residual).all()


def test_neighbour_verdicts_are_judged_again_from_scratch():
    before = texture((260, 260), seed=6)
    after = np.roll(before, (2, 3), axis=(0, 1))
    points = _grid(20.0, 50.0, 210.0)
    result = match_points(
        before, after, points, template_radius=8, search_radius=20
    )
    assert np.all(result.status == Status.OK)
    # An edit moves one match far off: it becomes the outlier; moved
    # back, it is ok again.
    kept = result.offset[40].copy()
    result.offset[40] = kept + 9
    judge_neighbours(result, 2.0, 2)
    assert result.status[40] == Status.OUTLIER
    result.offset[40] = kept
    judge_neighbours(result, 2.0, 2)
    assert np.all(result.status == Status.OK)
