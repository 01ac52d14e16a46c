"""Masks and no-data: masked NCC (Padfield) and match_points around holes."""

import dask.array as da
import numpy as np
import pytest

from helpers import texture
from napari_normxcorr import Status, match_points, normalized_cross_correlation
from reference import brute_force_masked_ncc

SHIFT = (4, -6)


def random_case(shape, template_shape, seed, share=0.2):
    """A random image and template with random masks, both of which reach
    the borders (first and last row masked in part)."""
    rng = np.random.default_rng(seed)
    image, template = rng.normal(size=shape), rng.normal(size=template_shape)
    image_mask = rng.random(shape) < share
    template_mask = rng.random(template_shape) < share
    image_mask[0, : shape[1] // 2] = True
    image_mask[-1, shape[1] // 2 :] = True
    template_mask[(0,) * template.ndim] = True
    template_mask[(-1,) * template.ndim] = True
    return template, image, template_mask, image_mask


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(
    "shape, template_shape",
    [((17, 21), (5, 4)), ((9, 10, 8), (3, 4, 3))],
    ids=["2d", "3d"],
)
def test_masked_ncc_equals_brute_force(mode, shape, template_shape):
    """Masked NCC equals direct summation to 1e-9, NaN where it is NaN."""
    template, image, t_mask, i_mask = random_case(shape, template_shape, 1)
    ncc = normalized_cross_correlation(
        template, image, mode, template_mask=t_mask, image_mask=i_mask
    )
    expected = brute_force_masked_ncc(template, image, t_mask, i_mask, mode)
    np.testing.assert_array_equal(np.isnan(ncc), np.isnan(expected))
    np.testing.assert_allclose(ncc, expected, atol=1e-9, equal_nan=True)
    assert np.nanmax(np.abs(ncc)) <= 1.0


def test_nan_and_inf_count_as_masked():
    """With masks given, NaN and inf pixels are left out like masked ones."""
    template, image, t_mask, i_mask = random_case((15, 16), (4, 5), 2)
    holes = image.copy()
    holes[3, 4], holes[10, 0] = np.nan, np.inf
    ncc = normalized_cross_correlation(
        template, holes, "valid", template_mask=t_mask, image_mask=i_mask
    )
    i_mask = i_mask.copy()
    i_mask[3, 4] = i_mask[10, 0] = True
    expected = brute_force_masked_ncc(template, image, t_mask, i_mask, "valid")
    np.testing.assert_allclose(ncc, expected, atol=1e-9, equal_nan=True)


def test_nan_without_masks_still_raises():
    """Without masks, NaN is refused (masking changes the padding)."""
    image = np.ones((9, 9))
    image[2, 5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        normalized_cross_correlation(np.ones((3, 3)), image)


def test_all_false_masks_give_the_plain_valid_ncc():
    """In 'valid' mode, nothing masked is the plain NCC (to rounding)."""
    rng = np.random.default_rng(3)
    image, template = rng.normal(size=(30, 25)), rng.normal(size=(7, 6))
    plain = normalized_cross_correlation(template, image, "valid")
    masked = normalized_cross_correlation(
        template,
        image,
        "valid",
        template_mask=np.zeros(template.shape, bool),
        image_mask=np.zeros(image.shape, bool),
    )
    np.testing.assert_allclose(masked, plain, atol=1e-12)


def test_flat_overlap_scores_zero():
    """A window flat over its valid pixels scores 0, not noise or NaN."""
    rng = np.random.default_rng(4)
    image = rng.normal(size=(20, 20))
    image[:, :10] = 7.0
    template = rng.normal(size=(5, 5))
    ncc = normalized_cross_correlation(
        template, image, "valid", image_mask=np.zeros(image.shape, bool)
    )
    np.testing.assert_array_equal(ncc[:, :6], 0.0)


def test_min_overlap_leaves_slivers_unscored():
    """Positions with too few pixels valid in both score NaN."""
    template, image, t_mask, i_mask = random_case((14, 14), (5, 5), 5)
    for share in (0.0, 0.8):
        ncc = normalized_cross_correlation(
            template,
            image,
            template_mask=t_mask,
            image_mask=i_mask,
            min_overlap=share,
        )
        expected = brute_force_masked_ncc(
            template, image, t_mask, i_mask, "full", share
        )
        np.testing.assert_allclose(ncc, expected, atol=1e-9, equal_nan=True)
    assert np.isnan(ncc[0, 0]) and np.isnan(ncc).sum() > 30


def test_skimage_masked_correlation_agrees():
    """skimage's private cross_correlate_masked (Padfield's code) agrees
    with our 'full' mode wherever both score a position."""
    masked = pytest.importorskip(
        "skimage.registration._masked_phase_cross_correlation"
    )
    template, image, t_mask, i_mask = random_case((18, 20), (6, 5), 6)
    ours = normalized_cross_correlation(
        template, image, template_mask=t_mask, image_mask=i_mask
    )
    theirs = masked.cross_correlate_masked(
        image,
        template,
        ~i_mask,
        ~t_mask,
        mode="full",
        axes=(0, 1),
        overlap_ratio=0.5,
    )
    # Its overlap_ratio is of the largest overlap and it zeroes what it
    # leaves out: compare where both score.
    scored = np.isfinite(ours) & (theirs != 0)
    assert scored.sum() > 0.25 * ours.size
    np.testing.assert_allclose(ours[scored], theirs[scored], atol=1e-12)


@pytest.mark.parametrize("which", ["template_mask", "image_mask"])
def test_mask_of_wrong_shape_is_named(which):
    image, template = np.zeros((10, 10)), np.zeros((3, 3))
    with pytest.raises(ValueError, match=f"{which} has shape"):
        normalized_cross_correlation(
            template, image, **{which: np.zeros((4, 4), bool)}
        )
    with pytest.raises(ValueError, match=f"{which} has shape"):
        match_points(image, image, [[5, 5]], **{which: np.zeros((4, 4), bool)})


@pytest.fixture(scope="module")
def pair():
    base = texture((260, 280), seed=3)
    return base, np.roll(base, SHIFT, axis=(0, 1))


POINTS = np.array([[60.0, 60.0], [100.0, 150.0], [180.0, 200.0]])
OPTIONS = dict(template_radius=15, search_radius=30)


def test_nan_stripe_through_windows_still_matches(pair):
    """A NaN stripe through a third of the templates: matched on the rest,
    refined by the warp on the pixels with data, status ok (back-match
    included)."""
    base, moved = pair
    holed = base.copy()
    # Rows 50..59 of the template around row 60: a third of 31 rows.
    holed[45:55, :] = np.nan
    holed[100:110, 100:200] = np.nan
    result = match_points(holed, moved, POINTS, **OPTIONS)
    assert list(result.status) == [Status.OK] * 3
    np.testing.assert_allclose(result.offset, [SHIFT] * 3, atol=1e-4)
    np.testing.assert_allclose(result.score, 1.0, atol=1e-6)
    assert result.refined.all()


def test_nan_stripe_with_a_sub_pixel_shift_stays_within_5_hundredths():
    """The masked path finds a sub-pixel shift, refined on the pixels
    with data (the parabola alone was within 0.05 px)."""
    from scipy import ndimage

    base = texture((260, 280), seed=3)
    shift = np.array([3.3, -2.6])
    moved = ndimage.shift(base, shift, order=3, mode="reflect")
    holed = moved.copy()
    holed[55:65, :] = np.nan  # a third of the first match's window
    result = match_points(base, holed, POINTS, **OPTIONS)
    assert list(result.status) == [Status.OK] * 3
    np.testing.assert_allclose(result.offset, [shift] * 3, atol=0.01)
    assert result.refined.all()


def test_mostly_masked_template_has_too_little_data(pair):
    """A template 90 % masked is not matched: too little data."""
    base, moved = pair
    mask = np.zeros(base.shape, bool)
    mask[45:73, 45:76] = True  # 28 of the 31 rows of the first template
    result = match_points(base, moved, POINTS, template_mask=mask, **OPTIONS)
    assert result.status[0] == Status.TOO_LITTLE_DATA
    assert np.isnan(result.matched[0]).all()
    assert list(result.status[1:]) == [Status.OK] * 2


def test_nodata_value_is_masked(pair):
    """Pixels equal to `nodata` are left out, in both images."""
    base, moved = pair
    filled = moved.copy()
    filled[60:70, 50:80] = -9999.0
    plain = match_points(base, filled, POINTS, **OPTIONS)
    assert plain.status[0] != Status.OK or plain.score[0] < 0.9
    result = match_points(base, filled, POINTS, nodata=-9999.0, **OPTIONS)
    assert list(result.status) == [Status.OK] * 3
    np.testing.assert_allclose(result.offset, [SHIFT] * 3, atol=0.05)


def test_lazy_masks_are_read_by_window(pair):
    """Masks may be dask arrays, like the images."""
    base, moved = pair
    mask = np.zeros(base.shape, bool)
    mask[50:56, :] = True
    eager = match_points(base, moved, POINTS, image_mask=mask, **OPTIONS)
    lazy = match_points(
        da.from_array(base, chunks=64),
        moved,
        POINTS,
        image_mask=da.from_array(mask, chunks=64),
        **OPTIONS,
    )
    np.testing.assert_array_equal(lazy.matched, eager.matched)
    assert list(lazy.status) == [Status.OK] * 3


def test_all_false_masks_change_nothing(pair):
    """Masks with nothing masked keep every window on the plain path."""
    base, moved = pair
    points = np.vstack([POINTS, [[130.3, 90.7]]])
    plain = match_points(base, moved, points, **OPTIONS)
    none = np.zeros(base.shape, bool)
    masked = match_points(
        base, moved, points, template_mask=none, image_mask=none, **OPTIONS
    )
    for name in ("matched", "score", "second_score", "consistency"):
        np.testing.assert_array_equal(
            getattr(masked, name), getattr(plain, name)
        )
    np.testing.assert_array_equal(masked.status, plain.status)
    np.testing.assert_array_equal(masked.refined, plain.refined)


def test_masked_surface_recomputed_with_nan_where_unscored(pair):
    """result.surface of a masked row is the masked NCC, NaN where the
    overlap is too small; its peak is the match."""
    base, moved = pair
    mask = np.zeros(base.shape, bool)
    mask[45:52, 45:76] = True
    result = match_points(base, moved, POINTS, template_mask=mask, **OPTIONS)
    surface = result.surface(0)
    peak = np.unravel_index(np.nanargmax(surface.values), surface.values.shape)
    np.testing.assert_allclose(
        surface.origin + peak, result.matched[0], atol=0.5
    )


def test_masks_with_a_transform_are_refused(pair):
    base, moved = pair
    with pytest.raises(ValueError, match="cannot be combined"):
        match_points(
            base,
            moved,
            POINTS,
            transform=np.eye(3),
            nodata=0.0,
            **OPTIONS,
        )


def test_min_valid_out_of_range_is_refused(pair):
    with pytest.raises(ValueError, match="min_valid"):
        match_points(*pair, POINTS, min_valid=1.5)
