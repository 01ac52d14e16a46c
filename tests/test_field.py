"""Dense displacement fields interpolated from the matches."""

import numpy as np
import pytest
from scipy.spatial import Delaunay

from napari_normxcorr import Status, grid_points, match_points
from napari_normxcorr.fields._displacement import (
    displacement_field,
    field_magnitude,
)
from napari_normxcorr.io._samples import (
    deformation_field,
    deformed_pair,
    true_positions,
)
from napari_normxcorr.matching._result import MatchResult

TEMPLATE_RADIUS, SEARCH_RADIUS = 12, 24


def made_result(points, offsets, status=None):
    """A MatchResult of `points` that moved by `offsets` (all ok)."""
    points = np.asarray(points, dtype=float)
    offsets = np.asarray(offsets, dtype=float)
    n = len(points)
    nan = np.full(n, np.nan)
    return MatchResult(
        points=points,
        image_points=points.copy(),
        matched=points + offsets,
        offset=offsets,
        score=np.ones(n),
        second_score=nan,
        distinctiveness=nan,
        consistency=nan,
        refined=np.ones(n, dtype=bool),
        transform_residual=nan,
        transform_inlier=np.zeros(n, dtype=bool),
        status=np.array(status or [Status.OK] * n, dtype=object),
    )


@pytest.fixture(scope="module")
def deformed():
    """The deformed sample matched on a grid: (shape, result, truth),
    truth being the (2, rows, cols) displacement of each template pixel."""
    layers = deformed_pair()
    before, after = layers[0][0], layers[1][0]
    shape = before.shape
    # A margin of the search radius: no search window is clipped.
    points = grid_points(shape, 16, margin=SEARCH_RADIUS)
    result = match_points(
        before,
        after,
        points,
        template_radius=TEMPLATE_RADIUS,
        search_radius=SEARCH_RADIUS,
    )
    # Content at p appears at q = p + field(q): the displacement of the
    # template pixel p is q - p (field(p) itself is off by ~0.1 px).
    grid = np.indices(shape, dtype=float).reshape(2, -1).T
    moved = true_positions(grid, deformation_field(shape)) - grid
    return shape, result, moved.T.reshape(2, *shape)


def test_field_matches_the_known_deformation(deformed):
    """Inside the hull of the grid, the linear field is within a few
    hundredths of a pixel of the true displacement (RMS)."""
    shape, result, truth = deformed
    assert (result.status == Status.OK).all()
    field = displacement_field(result, shape)
    assert field.shape == (2, *shape)
    inside = np.isfinite(field).all(axis=0)
    error = np.sqrt(np.sum((field - truth) ** 2, axis=0))[inside]
    rms = np.sqrt(np.mean(error**2))
    assert rms < 0.06, f"field RMS error {rms:.3f} px"
    assert error.max() < 0.3


def test_field_is_nan_outside_the_hull(deformed):
    """Pixels outside the convex hull of the ok points are NaN, in every
    component; inside pixels are finite."""
    shape, result, _ = deformed
    field = displacement_field(result, shape)
    pixels = np.indices(shape).reshape(2, -1).T
    in_hull = Delaunay(result.points).find_simplex(pixels) >= 0
    finite = np.isfinite(field).reshape(2, -1)
    assert (finite[0] == in_hull).all() and (finite[1] == in_hull).all()
    assert not np.isfinite(field[:, 0, 0]).any()


def test_field_is_exact_for_an_affine_motion():
    """Linear interpolation reproduces an affine displacement exactly,
    and the magnitude is the length of the displacement."""
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 40, size=(30, 2))
    corners = np.array([[0, 0], [0, 39], [39, 0], [39, 39]], dtype=float)
    points = np.concatenate([points, corners])
    linear, shift = np.array([[0.1, -0.05], [0.02, 0.03]]), [1.5, -2.0]
    result = made_result(points, points @ linear.T + shift)
    field = displacement_field(result, (40, 40))
    pixels = np.indices((40, 40), dtype=float).reshape(2, -1).T
    expected = (pixels @ linear.T + shift).T.reshape(2, 40, 40)
    np.testing.assert_allclose(field, expected, atol=1e-9)
    np.testing.assert_allclose(
        field_magnitude(field), np.hypot(*expected), atol=1e-9
    )


def test_only_ok_matches_count():
    """A match of another status does not bend the field."""
    points = [[0, 0], [0, 10], [10, 0], [10, 10], [5, 5]]
    offsets = [[1, 1]] * 4 + [[50, 50]]
    status = [Status.OK] * 4 + [Status.LOW_SCORE]
    field = displacement_field(made_result(points, offsets, status), (11, 11))
    np.testing.assert_allclose(field, 1.0)


@pytest.mark.parametrize("method", ["nearest", "cubic"])
def test_other_methods(method):
    """Nearest fills outside the hull too; cubic is NaN there."""
    points = [[2, 2], [2, 8], [8, 2], [8, 8]]
    field = displacement_field(
        made_result(points, [[1.0, -1.0]] * 4), (11, 11), method=method
    )
    assert np.isfinite(field[:, 0, 0]).all() == (method == "nearest")
    np.testing.assert_allclose(field[:, 5, 5], [1.0, -1.0])


def test_too_few_ok_matches():
    """Fewer than D + 1 ok matches is an error that says how many."""
    result = made_result([[0, 0], [5, 5]], [[1, 1], [1, 1]])
    with pytest.raises(ValueError, match="at least 3 ok matches, got 2"):
        displacement_field(result, (10, 10))


def test_collinear_matches():
    """Points on one line span no hull."""
    result = made_result([[0, 0], [1, 1], [2, 2], [3, 3]], [[1, 1]] * 4)
    with pytest.raises(ValueError, match="one line"):
        displacement_field(result, (10, 10))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shape": (0, 5)}, "shape must be"),
        ({"shape": (5, 5), "method": "spline"}, "method must be one of"),
        ({"shape": (5, 5, 5), "method": "cubic"}, "2-D only"),
    ],
)
def test_bad_arguments(kwargs, message):
    result = made_result([[0, 0], [0, 4], [4, 0]], [[0, 0]] * 3)
    with pytest.raises(ValueError, match=message):
        displacement_field(result, **kwargs)
