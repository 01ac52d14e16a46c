"""Transforms fitted to point matches, and warping images through them."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from napari_normxcorr import Status, match_points
from napari_normxcorr.registration._transform import MODELS, fit_transform
from napari_normxcorr.registration._warp import warp

CASES = [(model, 2) for model in MODELS] + [
    ("translation", 3),
    ("rigid", 3),
    ("affine", 3),
]


def _true_matrix(model, ndim, rng):
    """A random homogeneous matrix of `model` with sensible magnitudes."""
    matrix = np.eye(ndim + 1)
    matrix[:-1, -1] = rng.uniform(-20, 20, ndim)
    if model == "translation":
        return matrix
    if ndim == 2:
        angle = np.deg2rad(rng.uniform(-30, 30))
        rotation = Rotation.from_euler("z", angle).as_matrix()[:2, :2]
    else:
        rotation = Rotation.from_rotvec(
            np.deg2rad(rng.uniform(-30, 30)) * _unit(rng.normal(size=3))
        ).as_matrix()
    linear = rotation
    if model != "rigid":
        linear = linear * rng.uniform(0.8, 1.3)
    if model in ("affine", "projective"):
        shear = np.eye(ndim) + np.triu(rng.uniform(-0.1, 0.1, (ndim, ndim)), 1)
        linear = linear @ shear @ np.diag(rng.uniform(0.9, 1.1, ndim))
    matrix[:-1, :-1] = linear
    if model == "projective":
        matrix[-1, :-1] = rng.uniform(-3e-4, 3e-4, ndim)
    return matrix


def _unit(vector):
    return vector / np.linalg.norm(vector)


def _apply(matrix, points):
    homogeneous = np.c_[points, np.ones(len(points))] @ matrix.T
    return homogeneous[:, :-1] / homogeneous[:, -1:]


def _grid(ndim, size=200.0, n=6):
    axes = [np.linspace(0, size, n)] * ndim
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, ndim)


def _grid_error(fit, matrix, ndim):
    grid = _grid(ndim)
    error = fit(grid) - _apply(matrix, grid)
    return float(np.sqrt(np.mean(np.sum(error**2, axis=1))))


def _matches(model, ndim, seed, n=50, noise=0.02):
    rng = np.random.default_rng(seed)
    matrix = _true_matrix(model, ndim, rng)
    source = rng.uniform(0, 200, (n, ndim))
    target = _apply(matrix, source) + rng.normal(0, noise, (n, ndim))
    return matrix, source, target, rng


def _add_outliers(target, rng, fraction=0.3):
    """Move `fraction` of the targets 5-50 px away; return their rows."""
    rows = rng.choice(len(target), int(fraction * len(target)), False)
    directions = np.array([_unit(v) for v in rng.normal(size=target.shape)])
    distance = rng.uniform(5, 50, len(target))[:, np.newaxis]
    target[rows] += (directions * distance)[rows]
    return rows


def _texture(shape, seed=0, sigma=2.0):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), sigma)


@pytest.mark.parametrize(("model", "ndim"), CASES)
def test_fit_recovers_known_transform(model, ndim):
    """With 0.02 px noise, the fit maps a test grid within 0.05 px RMS."""
    matrix, source, target, _ = _matches(model, ndim, seed=1)
    for robust in (True, False):
        fit = fit_transform(source, target, model=model, robust=robust)
        assert _grid_error(fit, matrix, ndim) < 0.05
        assert fit.inliers.all()
        round_trip = _apply(fit.inverse, fit(source))
        np.testing.assert_allclose(round_trip, source, atol=1e-9)


@pytest.mark.parametrize(("model", "ndim"), CASES)
def test_robust_fit_rejects_gross_outliers(model, ndim):
    """With 30 % gross outliers, the robust fit stays within 0.1 px RMS,
    flags every outlier and at most two good matches."""
    matrix, source, target, rng = _matches(model, ndim, seed=2)
    outliers = _add_outliers(target, rng)
    fit = fit_transform(source, target, model=model)
    assert _grid_error(fit, matrix, ndim) < 0.1
    assert not fit.inliers[outliers].any()
    good = np.setdiff1d(np.arange(len(source)), outliers)
    assert np.count_nonzero(~fit.inliers[good]) <= 2


def test_fit_is_repeatable():
    """The same seed gives the same fit, inliers included."""
    _, source, target, rng = _matches("affine", 2, seed=3)
    _add_outliers(target, rng)
    first, second = (fit_transform(source, target) for _ in range(2))
    np.testing.assert_array_equal(first.matrix, second.matrix)
    np.testing.assert_array_equal(first.inliers, second.inliers)


@pytest.mark.parametrize("robust", [True, False])
def test_residuals_inliers_and_rms_match_direct_computation(robust):
    """residuals, inliers and rms agree with the matrix applied directly."""
    _, source, target, rng = _matches("similarity", 2, seed=4)
    _add_outliers(target, rng)
    fit = fit_transform(source, target, model="similarity", robust=robust)
    residuals = np.linalg.norm(_apply(fit.matrix, source) - target, axis=1)
    np.testing.assert_allclose(fit.residuals, residuals, atol=1e-9)
    np.testing.assert_array_equal(fit.inliers, residuals <= fit.threshold)
    rms = np.sqrt(np.mean(residuals[fit.inliers] ** 2))
    assert fit.rms == pytest.approx(rms)
    assert fit.threshold >= 0.5


def test_given_threshold_is_used():
    """An explicit threshold decides the inliers as given."""
    _, source, target, _ = _matches("affine", 2, seed=5, noise=0.5)
    fit = fit_transform(source, target, threshold=0.3)
    assert fit.threshold == 0.3
    assert fit.inliers.sum() < len(source)
    assert (fit.residuals[fit.inliers] <= 0.3).all()


@pytest.mark.parametrize("model", ["translation", "affine"])
def test_row_shift_is_the_first_coordinate(model):
    """Targets 3 px further down give matrix[0, -1] == 3: rows come first."""
    source = np.random.default_rng(6).uniform(0, 100, (10, 2))
    fit = fit_transform(source, source + [3, 0], model=model)
    assert fit.matrix[0, -1] == pytest.approx(3)
    assert fit.matrix[1, -1] == pytest.approx(0, abs=1e-9)
    np.testing.assert_allclose(fit([[10, 20]]), [[13, 20]])


def _rotated_pair(model="rigid", seed=7):
    """A template, the target showing it moved, and the true matrix."""
    template = _texture((96, 112), seed)
    matrix = np.eye(3)
    angle = np.deg2rad(12)
    rotation = Rotation.from_euler("z", angle).as_matrix()[:2, :2]
    matrix[:2, :2] = rotation
    matrix[:2, 2] = [4.3, -2.6] + (np.eye(2) - rotation) @ [48, 56]
    if model == "projective":
        matrix[2, :2] = [2e-4, -1e-4]
    # target[matrix @ p] = template[p]: sample the template through the
    # inverse map at every target pixel.
    rows, cols = np.indices(template.shape, dtype=float)
    grid = np.c_[rows.ravel(), cols.ravel()]
    back = _apply(np.linalg.inv(matrix), grid).T
    target = ndimage.map_coordinates(template, back, order=3)
    return template, target.reshape(template.shape), matrix


@pytest.mark.parametrize("model", ["rigid", "projective"])
def test_warp_realigns_moved_image(model):
    """The target warped through the fit matches the template inside."""
    template, target, matrix = _rotated_pair(model)
    source = np.random.default_rng(8).uniform(10, 86, (20, 2))
    fit = fit_transform(source, _apply(matrix, source), model=model)
    warped = warp(target, fit, template.shape, order=3)
    inside = (slice(20, -20), slice(20, -20))
    error = np.abs(warped[inside] - template[inside]).max()
    assert error < 0.05 * template.std()
    assert np.isnan(warped[0, -1])


@pytest.mark.parametrize("model", ["rigid", "projective"])
@pytest.mark.parametrize("order", [1, 3])
def test_warp_of_dask_array_is_lazy_and_equal(model, order):
    """A dask image gives a lazy warp equal to the numpy warp."""
    da = pytest.importorskip("dask.array")
    _, target, matrix = _rotated_pair(model)
    fit = fit_transform(_grid(2, 90, 4), _apply(matrix, _grid(2, 90, 4)))
    fit = matrix if model == "projective" else fit
    lazy = warp(da.from_array(target, chunks=(40, 50)), fit, (100, 90))
    expected = warp(target, fit, (100, 90))
    assert isinstance(lazy, da.Array)
    assert lazy.chunksize == (40, 50)
    np.testing.assert_allclose(lazy.compute(), expected, atol=1e-12)
    assert np.isnan(expected).any() and np.isfinite(expected).any()


class _RecordingArray:
    """An array that remembers which pixels were read."""

    def __init__(self, data):
        self.data, self.shape, self.dtype = data, data.shape, data.dtype
        self.ndim = data.ndim
        self.read = np.zeros(data.shape, dtype=bool)

    def __getitem__(self, index):
        self.read[index] = True
        return self.data[index]


@pytest.mark.parametrize("lazy", [False, True])
def test_warp_reads_only_the_needed_input(lazy):
    """Warping a corner of a large image reads (chunks near) that corner."""
    da = pytest.importorskip("dask.array")
    image = _RecordingArray(_texture((200, 200)))
    fit = np.array([[1.0, 0, 10], [0, 1, 20], [0, 0, 1]])
    source = da.from_array(image, chunks=50) if lazy else image
    warped = warp(source, fit, (20, 20))
    warped = warped.compute() if lazy else warped
    np.testing.assert_allclose(warped, image.data[10:30, 20:40])
    assert image.read.sum() <= (50 * 50 if lazy else 22 * 22)
    assert not image.read[60:, 60:].any()


def test_warp_3d_translation():
    """A 3-D volume shifted by whole pixels is shifted back exactly."""
    volume = _texture((12, 14, 16), sigma=1.0)
    target = np.roll(volume, (1, 2, -3), axis=(0, 1, 2))
    source = _grid(3, 10, 3)
    fit = fit_transform(source, source + [1, 2, -3], model="translation")
    warped = warp(target, fit)
    np.testing.assert_allclose(warped[:-1, :-2, 3:], volume[:-1, :-2, 3:])


def test_warp_rejects_wrong_dimension():
    """An image with more axes than the fit is refused."""
    fit = fit_transform(_grid(2, 10, 3), _grid(2, 10, 3) + 1)
    with pytest.raises(ValueError, match="must have 2 axes"):
        warp(np.zeros((3, 8, 8)), fit)


def test_fit_of_match_result_recovers_shift():
    """The ok rows of a real MatchResult give the sub-pixel shift."""
    template = _texture((200, 200), seed=9, sigma=3.0)
    shift = np.array([2.3, -1.7])
    image = ndimage.shift(template, shift, order=3, mode="nearest")
    points = _grid(2, 140, 5) + 30
    result = match_points(
        template, image, points, template_radius=15, search_radius=25
    )
    fit = fit_transform(result, model="translation")
    ok = np.array([str(s) == "ok" for s in result.status])
    assert ok.sum() >= 20
    np.testing.assert_allclose(fit.matrix[:2, 2], shift, atol=0.05)
    np.testing.assert_array_equal(fit.inliers & ~ok, False)


def test_match_result_rows_not_ok_are_left_out_but_scored():
    """Rows not ok stay out of the fit, get a residual, are not inliers."""
    points = _grid(2, 100, 4)
    matched = points + [1.0, 2.0]
    matched[0] += 30
    matched[1] = np.nan
    status = np.array(["ok"] * len(points), dtype=object)
    status[:2] = "low score"
    result = SimpleNamespace(points=points, matched=matched, status=status)
    fit = fit_transform(result, model="affine", robust=False)
    np.testing.assert_allclose(fit.matrix[:2, 2], [1, 2], atol=1e-9)
    assert fit.residuals[0] == pytest.approx(np.hypot(30, 30))
    assert np.isnan(fit.residuals[1])
    assert not fit.inliers[:2].any() and fit.inliers[2:].all()


def test_to_dict_is_strict_json():
    """to_dict survives strict JSON, NaN residuals included."""
    _, source, target, _ = _matches("projective", 2, seed=10)
    target[3] = np.nan
    fit = fit_transform(source, target, model="projective")
    text = json.dumps(fit.to_dict(), allow_nan=False)
    restored = json.loads(text)
    np.testing.assert_array_equal(restored["matrix"], fit.matrix)
    assert restored["residuals"][3] is None
    assert restored["residuals"][4] == fit.residuals[4]
    assert restored["model"] == "projective"
    assert restored["inliers"] == fit.inliers.tolist()


@pytest.mark.parametrize(
    ("model", "source", "target", "options", "message"),
    [
        ("affine", _grid(2, 10, 2)[:2], None, {}, "at least 3"),
        ("rigid", _grid(3, 10, 2)[:2], None, {}, "at least 3"),
        ("projective", _grid(2, 10, 2)[:3], None, {}, "at least 4"),
        ("affine", np.c_[np.arange(9), 2 * np.arange(9)], None, {}, "collin"),
        ("rigid", np.ones((5, 2)), None, {}, "single point"),
        ("shear", _grid(2, 10, 3), None, {}, "unknown model 'shear'"),
        ("projective", _grid(3, 10, 3), None, {}, "not available for 3-D"),
        ("affine", np.ones((4, 4)), None, {}, "not available for 4-D"),
        ("affine", _grid(2, 10, 3), np.ones((9, 3)), {}, "same shape"),
        ("affine", _grid(2, 10, 3), None, {"threshold": 0}, "positive"),
    ],
)
def test_degenerate_input_is_refused(model, source, target, options, message):
    """Input that cannot determine the model raises a ValueError."""
    target = source + 1.0 if target is None else target
    with pytest.raises(ValueError, match=message):
        fit_transform(source, target, model=model, **options)


@pytest.mark.parametrize("model", ["translation", "similarity", "affine"])
def test_all_outliers_are_refused(model):
    """Unrelated targets support no transform within the threshold."""
    rng = np.random.default_rng(11)
    source, target = rng.uniform(0, 200, (2, 30, 2))
    with pytest.raises(ValueError, match="look like outliers"):
        fit_transform(source, target, model=model, threshold=1.0)


def test_too_few_ok_rows_in_match_result():
    """A MatchResult with too few ok rows names the count."""
    result = SimpleNamespace(
        points=_grid(2, 10, 3),
        matched=_grid(2, 10, 3),
        status=["ok", "ok"] + ["ambiguous"] * 7,
    )
    with pytest.raises(ValueError, match="at least 3 matched points, got 2"):
        fit_transform(result)
    with pytest.raises(ValueError, match="target is required"):
        fit_transform(_grid(2, 10, 3))


def test_flag_marks_ok_rows_off_the_model_as_transform_outliers():
    """A match moved 6 px off a pure shift: its row becomes `transform
    outlier` with its residual; the others stay ok, residuals near 0."""
    rng = np.random.default_rng(3)
    base = ndimage.gaussian_filter(rng.normal(size=(200, 200)), 1.5)
    moved = ndimage.shift(base, (2.3, -1.7), order=3)
    points = rng.uniform(40, 160, size=(12, 2))
    result = match_points(
        base, moved, points, template_radius=10, search_radius=20
    )
    assert (result.status == Status.OK).all()
    result.matched[4] += [6.0, 0.0]  # a wrong match the verdicts missed
    fit = fit_transform(result, model="translation")
    flagged = fit.flag(result)
    assert flagged.status[4] == Status.TRANSFORM_OUTLIER
    assert flagged.transform_residual[4] == pytest.approx(6.0, abs=0.05)
    others = np.arange(12) != 4
    assert (flagged.status[others] == Status.OK).all()
    assert flagged.transform_inlier[others].all()
    assert (flagged.transform_residual[others] < 0.05).all()
    # The input result is left as it was.
    assert (result.status == Status.OK).all()
    assert np.isnan(result.transform_residual).all()
    with pytest.raises(ValueError, match="rows"):
        fit.flag(result.take([0, 1]))
