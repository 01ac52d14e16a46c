"""An `ok` that stays right when the pattern deforms or pixels are
missing, and an uncertainty that covers the error (ground truth in
`ground_truth`)."""

import numpy as np
import pytest

from ground_truth import (
    dead_pixels,
    errors,
    grid_points,
    nan_stripe,
    particle_pair,
    speckle_pair,
    striped_nodata,
)
from napari_normxcorr import Status, match_points


def _ok(result):
    return result.status == Status.OK


def _matched(case, points, template_radius, search_radius, **options):
    """match_points on a ground-truth case's two images."""
    return match_points(
        case.template_image,
        case.image,
        points,
        template_radius=template_radius,
        search_radius=search_radius,
        **options,
    )


@pytest.fixture(scope="module")
def rotating_speckle():
    """3 degrees of rotation with camera noise, a 16 px grid."""
    case = speckle_pair(angle=3.0, noise=0.01, seed=1)
    points = grid_points(case, spacing=16, margin=34)
    result = _matched(case, points, 15, 25)
    return case, points, result


def test_rotating_speckle_ok_rows_stay_within_a_tenth(rotating_speckle):
    """A translation alone is 0.1-0.27 px off here while its peak looks
    sharp; the affine warp follows the rotation."""
    case, _, result = rotating_speckle
    ok = _ok(result)
    assert ok.mean() >= 0.8
    assert errors(result, case)[ok].max() <= 0.1


def test_rotating_speckle_gradient_is_the_rotation(rotating_speckle):
    """The fitted warp's gradient within 2e-3 of A - I (RMS per
    component) on the ok rows."""
    case, points, result = rotating_speckle
    ok = _ok(result)
    truth = case.true_gradient(points[ok])
    rms = np.sqrt(np.mean((result.gradient[ok] - truth) ** 2, axis=0))
    assert rms.max() <= 2e-3
    assert result.to_table()["gradient-0-1"][ok] == pytest.approx(
        truth[:, 0, 1], abs=0.01
    )


def test_translation_only_is_what_misled(rotating_speckle):
    """shape_order=0 keeps the old refinement: its ok rows stray past a
    tenth of a pixel on the same pair (what the warp cures), and it
    fits no gradient."""
    case, points, _ = rotating_speckle
    shifted = _matched(case, points, 15, 25, shape_order=0)
    ok = _ok(shifted)
    assert errors(shifted, case)[ok].max() > 0.1
    assert np.isnan(shifted.gradient).all()


def test_vortex_ok_rows_within_half_a_pixel():
    """A Lamb-Oseen vortex in particle images (gradients up to 0.1
    px/px, 33 px windows): at least 95 % ok, none more than 0.5 px off."""
    case = particle_pair("lamb-oseen", shape=(256, 256), seed=2)
    points = grid_points(case, spacing=16, margin=36)
    result = _matched(case, points, 16, 28)
    ok = _ok(result)
    assert ok.mean() >= 0.95
    assert errors(result, case)[ok].max() <= 0.5


def test_nan_stripe_rows_ok_and_within_a_tenth():
    """A 6-column NaN stripe through 21 px templates: at least 80 % of
    the rows ok and within 0.1 px."""
    case = nan_stripe(width=6, seed=3)
    points = grid_points(case, spacing=8, margin=30, box=None)
    column = case.info["columns"][0]
    across = np.abs(points[:, 1] - column) <= 13  # the stripe in the window
    points = points[across]
    result = _matched(case, points, 10, 20)
    good = _ok(result) & (errors(result, case) <= 0.1)
    assert good.mean() >= 0.8


def test_striped_no_data_is_never_a_wrong_ok():
    """4 of every 11 rows missing, other rows in each image: at the true
    shift too few pixels overlap; a peak beside that hole is not ok."""
    case = striped_nodata()
    points = grid_points(case, spacing=12, margin=30)
    result = _matched(case, points, 10, 20)
    ok = _ok(result)
    assert not (ok & (errors(result, case) > 0.5)).any()
    assert (result.status[~ok] == Status.TOO_LITTLE_DATA).all()


def test_dead_pixels_never_give_a_wrong_ok():
    """40 % dead pixels in both images: surfaces of few scored positions
    never make an ok match off the truth."""
    case = dead_pixels(fraction=0.4, seed=4)
    points = grid_points(case, spacing=12, margin=20)
    result = _matched(case, points, 4, 12)
    ok = _ok(result)
    assert not (ok & (errors(result, case) > 0.5)).any()


def test_one_scored_position_is_never_ok():
    """Data in the target only where the template lies at one offset,
    and min_valid 1: the surface has one scored position, no second
    peak to judge it by, so the match is not ok (it was, 4 px off)."""
    case = speckle_pair(angle=0.0, translation=(1.0, 2.0), seed=5)
    point = np.array([[128.0, 128.0]])
    target = case.image.copy()
    mask = np.ones(target.shape, dtype=bool)
    mask[125:136, 126:137] = False  # only at offset (+4, +3) from the truth
    target[mask] = np.nan
    result = match_points(
        case.template_image,
        target,
        point,
        template_radius=5,
        search_radius=12,
        min_valid=1.0,
    )
    assert result.status[0] == Status.TOO_LITTLE_DATA


@pytest.mark.parametrize(
    ("make", "radii", "spacing"),
    [
        (lambda: speckle_pair(angle=3.0, noise=0.02, seed=6), (15, 25), 16),
        (lambda: particle_pair("lamb-oseen", seed=7), (16, 28), 16),
        (lambda: particle_pair("shear", seed=8), (16, 24), 16),
        (lambda: nan_stripe(width=6, seed=9), (10, 20), 12),
    ],
    ids=["speckle", "vortex", "shear", "stripe"],
)
def test_uncertainty_covers_the_error(make, radii, spacing):
    """At least 90 % of the ok rows lie within 3 x uncertainty + 0.02 px
    of the truth: the uncertainty holds the fit's misfit, not only its
    noise."""
    case = make()
    points = grid_points(case, spacing=spacing, margin=radii[1] + 8)
    result = _matched(case, points, radii[0], radii[1])
    ok = _ok(result)
    assert ok.sum() >= 20
    within = errors(result, case)[ok] <= 3 * result.uncertainty[ok] + 0.02
    assert within.mean() >= 0.9


def test_shape_order_is_checked():
    case = speckle_pair(shape=(64, 64))
    for bad in (3, -1, 1.5, True, "affine"):
        with pytest.raises(ValueError, match="shape_order"):
            match_points(
                case.template_image,
                case.image,
                [[32.0, 32.0]],
                template_radius=5,
                search_radius=8,
                shape_order=bad,
            )


def test_guided_matching_refines_the_warp_about_the_point():
    """Through a rough transform (off by a degree and half a pixel) the
    warp takes up what the transform misses, fitted about the point's
    place in its resampled template (not about where the point lies in
    the template image): ok rows within 0.01 px."""
    case = speckle_pair(angle=10.0, stretch=(0.05, 0.05), noise=0.0)
    mapping = case.info["mapping"]
    turn = np.deg2rad(1.0)
    rough = np.eye(3)
    rough[:2, :2] = mapping.matrix @ [
        [np.cos(turn), -np.sin(turn)],
        [np.sin(turn), np.cos(turn)],
    ]
    rough[:2, 2] = mapping.forward(np.zeros((1, 2)))[0] + [0.5, -0.4]
    points = grid_points(case, spacing=24, margin=40)
    result = _matched(case, points, 10, 16, transform=rough)
    ok = _ok(result)
    assert ok.mean() >= 0.8
    assert errors(result, case)[ok].max() <= 0.01


def test_a_match_along_an_edge_is_not_ok():
    """scikit-image's brick shifted by (0.3, 0.4): templates on a mortar
    line fit the target well 2-6 px along the line; the NCC surface,
    flat along the line, keeps them from ok (the warp's own covariance
    called some precise)."""
    from scipy import ndimage
    from skimage import data

    before = data.brick().astype(float) / 255
    shift = np.array([0.3, 0.4])
    after = ndimage.shift(before, shift, order=3, mode="reflect")
    axis = np.linspace(40, before.shape[0] - 41, 27)
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1)
    points = points.reshape(-1, 2)
    result = match_points(
        before, after, points, template_radius=15, search_radius=25
    )
    ok = _ok(result)
    error = np.linalg.norm(result.matched - (points + shift), axis=1)
    assert ok.mean() >= 0.5
    assert error[ok].max() <= 0.5
