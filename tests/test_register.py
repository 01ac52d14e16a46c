"""Matching guided by a transform, and register: transforms from images."""

import warnings

import numpy as np
import pytest
from scipy import ndimage

from napari_normxcorr import (
    Status,
    TransformFit,
    fit_transform,
    match_points,
    register,
)
from napari_normxcorr.registration._register import _fit_clicks

CENTRE = (256.0, 256.0)
# Template windows 31 wide, found up to 15 px from the guess.
RADII = {"template_radius": 15, "search_radius": 30}


def _similarity(angle, scale, shift, centre=CENTRE):
    """Rotation by `angle` degrees and scaling about `centre`, then a
    shift: a (row, col) homogeneous matrix."""
    a = np.deg2rad(angle)
    linear = scale * np.array(
        [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    )
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = np.add(centre, shift) - linear @ np.asarray(centre)
    return matrix


def _apply(matrix, points):
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def _texture(shape, rng):
    values = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    return values / values.std()


def _warped_pair(matrix, seed=0, size=512, noise=0.01):
    """A texture and the texture moved by `matrix` (cubic splines), with
    `noise` (relative to the texture's spread) added to the target."""
    rng = np.random.default_rng(seed)
    template = _texture((size, size), rng)
    # affine_transform maps output (target) pixels to input pixels.
    inverse = np.linalg.inv(matrix)
    target = ndimage.affine_transform(
        template, inverse[:2, :2], inverse[:2, 2], order=3, mode="mirror"
    )
    target += rng.normal(0, noise, target.shape)
    return template, target


def _grid(low, high, n):
    axis = np.linspace(low, high, n)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def _rms_against(fit, matrix, points):
    error = fit(points) - _apply(matrix, points)
    return float(np.sqrt(np.mean(np.sum(error**2, axis=1))))


TRUTH = _similarity(30, 1.3, (3.0, -2.0))


@pytest.fixture(scope="module")
def rotated_pair():
    """Template, target rotated by 30 degrees and scaled by 1.3."""
    return _warped_pair(TRUTH)


@pytest.fixture(scope="module")
def points():
    """An 8 x 8 grid whose templates lie well inside both images."""
    return _grid(150.0, 362.0, 8)


def test_true_transform_removes_rotation_and_scale(rotated_pair, points):
    """Guided by the true transform, matches land within 0.05 px of it."""
    template, target = rotated_pair
    fractional = points + 0.37  # off the pixel grid
    truth = _apply(TRUTH, fractional)
    result = match_points(
        template, target, fractional, transform=TRUTH, **RADII
    )
    ok = result.status == Status.OK
    error = np.linalg.norm(result.matched - truth, axis=1)
    assert ok.mean() >= 0.9
    assert error[ok].max() <= 0.05
    np.testing.assert_allclose(result.image_points, truth, atol=1e-9)
    # The back-match through the inverse finds the points again.
    assert np.nanmax(result.consistency[ok]) <= 0.5
    # The surface recomputed on demand peaks under the match.
    surface = result.surface(5)
    peak = np.unravel_index(np.argmax(surface.values), surface.values.shape)
    assert np.all(np.abs(surface.origin + peak - result.matched[5]) <= 1)


@pytest.mark.parametrize("as_fit", [False, True])
def test_identity_transform_gives_the_plain_matches(as_fit):
    """With the identity, whole-pixel points match as without transform."""
    rng = np.random.default_rng(1)
    template = _texture((256, 256), rng)
    target = np.roll(template, (7, -4), axis=(0, 1))
    target += rng.normal(0, 0.01, target.shape)
    points = rng.integers(40, 216, (30, 2)).astype(float)
    identity = np.eye(3)
    if as_fit:
        identity = fit_transform(points, points, model="affine")
        assert isinstance(identity, TransformFit)
    plain = match_points(template, target, points, **RADII)
    guided = match_points(
        template, target, points, transform=identity, **RADII
    )
    np.testing.assert_allclose(guided.matched, plain.matched, atol=1e-6)
    np.testing.assert_allclose(guided.score, plain.score, atol=1e-6)
    assert list(guided.status) == list(plain.status)
    assert (plain.status == Status.OK).mean() > 0.9


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_register_from_three_rough_clicks(rotated_pair, points):
    """Three clicks 3 px off suffice to find the transform to 0.1 px,
    where plain NCC fails on most points."""
    template, target = rotated_pair
    rng = np.random.default_rng(3)
    clicks = np.full_like(points, np.nan)
    clicked = [0, 7, 60]  # two corners of the grid and near a third
    clicks[clicked] = _apply(TRUTH, points[clicked])
    clicks[clicked] += rng.uniform(-3, 3, (3, 2))
    fit = register(template, target, points, image_points=clicks, **RADII)
    assert _rms_against(fit, TRUTH, _grid(150.0, 362.0, 11)) <= 0.1
    assert fit.matches is not None
    assert (fit.matches.status == Status.OK).mean() >= 0.9
    # Plain NCC fails there, started at the points or even at the truth.
    truth = _apply(TRUTH, points)
    for guesses in (points, truth):
        plain = match_points(
            template, target, points, image_points=guesses, **RADII
        )
        error = np.linalg.norm(plain.matched - truth, axis=1)
        usable = (plain.status == Status.OK) & (error <= 2)
        assert usable.mean() < 0.2


def _plant_shifted_patch(target, centre, shift, half=22):
    """Copy of `target` whose patch around `centre` shows what lay `shift`
    pixels before it: the pattern at `centre` moves by `shift`."""
    planted = target.copy()
    row, col = np.rint(centre).astype(int)
    rows, cols = (
        slice(row - half, row + half + 1),
        slice(col - half, col + half),
    )
    source = (
        slice(rows.start - shift[0], rows.stop - shift[0]),
        slice(cols.start - shift[1], cols.stop - shift[1]),
    )
    planted[rows, cols] = target[source]
    return planted


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_register_from_a_rough_matrix_flags_a_planted_outlier(
    rotated_pair, points
):
    """A transform 1 degree and 2 px off converges; a point whose pattern
    was moved 6 px in the target ends as an outlier, never ok."""
    template, target = rotated_pair
    outlier = 27  # inside the grid
    target = _plant_shifted_patch(
        target, _apply(TRUTH, points[outlier]), (6, 0)
    )
    rough = _similarity(31, 1.3, (5.0, -2.0))
    fit = register(template, target, points, transform=rough, **RADII)
    assert _rms_against(fit, TRUTH, _grid(150.0, 362.0, 11)) <= 0.1
    matches = fit.matches
    assert matches is not None and len(matches) == len(points)
    assert matches.status[outlier] != Status.OK
    assert not matches.transform_inlier[outlier]
    assert matches.transform_residual[outlier] > 5
    ok = matches.status == Status.OK
    assert ok.mean() >= 0.9
    assert np.all(matches.transform_inlier[ok])
    assert np.all(np.isfinite(matches.transform_residual[ok]))
    np.testing.assert_array_equal(matches.transform_inlier, fit.inliers)


def test_register_warns_when_rounds_run_out(rotated_pair, points):
    """One round from a rough start cannot meet a 0.01 px tolerance."""
    template, target = rotated_pair
    rough = _similarity(31, 1.3, (5.0, -2.0))
    with pytest.warns(RuntimeWarning, match="did not converge"):
        register(
            template,
            target,
            points,
            transform=rough,
            max_iterations=1,
            **RADII,
        )


def test_register_starts_from_phase_correlation_without_a_guess():
    """A shifted pair needs neither clicks nor a transform."""
    rng = np.random.default_rng(4)
    template = _texture((256, 256), rng)
    target = ndimage.shift(template, (9.0, -13.0), order=3, mode="mirror")
    points = _grid(60.0, 196.0, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit = register(template, target, points, model="similarity", **RADII)
    expected = np.eye(3)
    expected[:2, 2] = (9.0, -13.0)
    np.testing.assert_allclose(fit.matrix, expected, atol=0.02)


@pytest.mark.parametrize(
    ("count", "model"), [(1, "translation"), (2, "similarity"), (3, "affine")]
)
def test_clicks_fit_the_most_general_model_they_determine(count, model):
    """One click gives a shift, two a similarity, three an affine."""
    rng = np.random.default_rng(5)
    truth = np.array([[1.1, 0.2, 4.0], [-0.1, 0.9, -6.0], [0, 0, 1]])
    points = rng.uniform(0, 300, (10, 2))
    clicks = np.full_like(points, np.nan)
    clicks[:count] = _apply(truth, points[:count])
    matrix = _fit_clicks(points, clicks, "affine", 2)
    expected = fit_transform(
        points[:count], clicks[:count], model=model, robust=False
    ).matrix
    np.testing.assert_allclose(matrix, expected, atol=1e-9)
    # The fit passes through the clicks exactly.
    np.testing.assert_allclose(
        _apply(matrix, points[:count]), clicks[:count], atol=1e-9
    )


def test_template_needing_pixels_outside_is_flagged():
    """Near the border, guided templates are flagged, plain ones clipped."""
    rng = np.random.default_rng(6)
    template = _texture((200, 200), rng)
    rotation = _similarity(20, 1.0, (0.0, 0.0), centre=(100.0, 100.0))
    points = np.array([[8.0, 100.0], [100.0, 100.0]])
    guided = match_points(
        template, template, points, transform=rotation, **RADII
    )
    plain = match_points(template, template, points, **RADII)
    assert guided.status[0] == Status.NO_FIT
    assert str(guided.status[0]) == "template does not fit"
    assert np.all(np.isnan(guided.matched[0]))
    # Clipped, the plain template still finds the point.
    assert plain.status[0] != Status.NO_FIT
    np.testing.assert_allclose(plain.matched[0], points[0], atol=0.05)
    assert guided.status[1] != Status.NO_FIT


def test_leading_plane_coordinates_pass_through():
    """In a (t, row, col) stack only (row, col) go through the transform."""
    rng = np.random.default_rng(7)
    matrix = _similarity(10, 1.1, (1.0, 2.0), centre=(100.0, 100.0))
    frames = [_texture((200, 200), rng) for _ in range(2)]
    inverse = np.linalg.inv(matrix)
    moved = [
        ndimage.affine_transform(f, inverse[:2, :2], inverse[:2, 2], order=3)
        for f in frames
    ]
    planes = _grid(70.0, 130.0, 3)
    points = np.r_[np.c_[np.zeros(9), planes], np.c_[np.ones(9), planes]]
    result = match_points(
        np.stack(frames), np.stack(moved), points, transform=matrix, **RADII
    )
    assert np.all(result.status == Status.OK)
    np.testing.assert_array_equal(result.matched[:, 0], points[:, 0])
    truth = _apply(matrix, points[:, 1:])
    np.testing.assert_allclose(result.matched[:, 1:], truth, atol=0.05)


class _Counting:
    """An array read window by window that counts the pixels read."""

    def __init__(self, values):
        self.values = values
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, 2
        self.pixels_read = 0

    def __getitem__(self, index):
        window = self.values[index]
        self.pixels_read += window.size
        return window


def test_lazy_images_are_read_window_by_window(rotated_pair):
    """Guided matching reads only regions around the points."""
    template, target = rotated_pair
    points = _grid(200.0, 312.0, 3)
    lazy = [_Counting(template), _Counting(target)]
    result = match_points(*lazy, points, transform=TRUTH, **RADII)
    in_memory = match_points(
        template, target, points, transform=TRUTH, **RADII
    )
    np.testing.assert_allclose(result.matched, in_memory.matched, atol=1e-9)
    # Forward and back: per point a template region and a search window
    # from each image, each well under 100 x 100 pixels.
    assert sum(c.pixels_read for c in lazy) <= 4 * len(points) * 100**2


def test_too_few_points_for_the_model():
    """Two points cannot determine an affine transform."""
    image = _texture((64, 64), np.random.default_rng(8))
    with pytest.raises(ValueError, match="at least 3 points"):
        register(image, image, [[20, 20], [40, 40]], **RADII)
    with pytest.raises(ValueError, match="span 1 direction"):
        register(image, image, [[10, 10], [20, 20], [30, 30]], **RADII)


def test_bad_input_names_the_problem():
    """Wrong shapes of points, clicks and transforms are refused clearly."""
    image = _texture((64, 64), np.random.default_rng(9))
    points = [[20.0, 20.0], [40.0, 25.0], [30.0, 45.0]]
    with pytest.raises(ValueError, match="points has shape"):
        register(image, image, [1.0, 2.0, 3.0], **RADII)
    with pytest.raises(ValueError, match="image_points has shape"):
        register(image, image, points, image_points=[[1.0, 2.0]], **RADII)
    with pytest.raises(ValueError, match="no finite row"):
        register(image, image, points, image_points=np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match=r"\(3, 3\) homogeneous"):
        match_points(image, image, points, transform=np.eye(4), **RADII)
    with pytest.raises(ValueError, match="singular"):
        match_points(image, image, points, transform=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown model"):
        register(image, image, points, model="elastic", **RADII)
