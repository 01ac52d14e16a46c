"""The ground-truth generators are right, checked without the engine."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage
from skimage.registration import phase_cross_correlation

import ground_truth as gt

SMALL = (96, 96)


def finite_difference_gradient(function, points, step=1e-3):
    """Central differences of `function` (K, 2) -> (K, 2): (K, 2, 2)."""
    columns = []
    for axis in range(2):
        delta = np.zeros(2)
        delta[axis] = step
        columns.append(
            (function(points + delta) - function(points - delta)) / (2 * step)
        )
    return np.stack(columns, axis=-1)


def registered_shift(template, image):
    """Displacement of `image` against `template`: cross-correlation of
    the Hann-windowed images (no border jump to bias it), upsampled 100x
    (scikit-image, independent of the engine)."""
    window = np.outer(*(np.hanning(n) for n in template.shape))
    shift, _, _ = phase_cross_correlation(
        (template - template.mean()) * window,
        (image - image.mean()) * window,
        upsample_factor=100,
        normalization=None,
    )
    return -shift


# -- (a) speckle ------------------------------------------------------------


def test_speckle_at_the_identity_is_the_undeformed_image():
    case = gt.speckle_pair(SMALL, angle=0.0, noise=0.0)
    np.testing.assert_allclose(
        case.image, case.template_image, rtol=0, atol=1e-12
    )


def test_speckle_translated_by_whole_pixels_is_the_image_moved():
    case = gt.speckle_pair(SMALL, angle=0.0, translation=(3, -5), noise=0)
    np.testing.assert_allclose(
        case.image[3:, :-5], case.template_image[:-3, 5:], rtol=0, atol=1e-12
    )
    assert np.ptp(case.template_image) > 0.5  # there is a pattern


def test_speckle_sub_pixel_translation_has_the_stated_sign():
    case = gt.speckle_pair(SMALL, angle=0.0, translation=(1.3, -0.6))
    found = registered_shift(case.template_image, case.image)
    np.testing.assert_allclose(found, (1.3, -0.6), atol=0.03)


def test_deformed_speckle_pixels_are_the_pattern_integrated_over_them():
    # The renderer evaluates each blob over its footprint only; the brute
    # force evaluates every blob at the inverse-mapped sub-samples.
    case = gt.speckle_pair(
        SMALL, angle=7.0, stretch=(0.02, -0.01), shear=0.015, noise=0
    )
    pattern, mapping = case.info["pattern"], case.info["mapping"]
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, SMALL[0], size=(30, 2))
    sub = (np.arange(3) + 0.5) / 3 - 0.5
    offsets = np.stack(np.meshgrid(sub, sub, indexing="ij"), -1)
    samples = pixels[:, None, :] + offsets.reshape(1, -1, 2)
    source = mapping.inverse(samples.reshape(-1, 2))
    expected = pattern(source).reshape(len(pixels), -1).mean(axis=1)
    np.testing.assert_allclose(
        case.image[pixels[:, 0], pixels[:, 1]], expected, rtol=0, atol=1e-12
    )


def test_affine_map_inverts_and_its_gradient_is_a_minus_identity():
    mapping = gt.AffineMap.make(
        (40.0, 50.0), angle=3, stretch=(0.01, -0.02), shear=0.01,
        translation=(1.5, -2.0),
    )  # fmt: skip
    points = np.random.default_rng(1).uniform(0, 100, size=(20, 2))
    np.testing.assert_allclose(
        mapping.inverse(mapping.forward(points)), points, atol=1e-12
    )
    np.testing.assert_allclose(
        mapping.forward(mapping.centre), [mapping.centre + (1.5, -2.0)]
    )
    # A pure rotation keeps lengths and turns the col axis towards -row
    # (counter-clockwise as displayed, rows down).
    rotation = gt.AffineMap.make(angle=3).matrix
    np.testing.assert_allclose(np.linalg.svd(rotation)[1], 1.0)
    turned = rotation @ [0.0, 1.0]
    assert np.arctan2(-turned[0], turned[1]) == pytest.approx(np.deg2rad(3))
    fd = finite_difference_gradient(lambda p: mapping.forward(p) - p, points)
    np.testing.assert_allclose(mapping.gradient(points), fd, atol=1e-8)


def test_speckle_noise_is_the_stated_share_of_the_range():
    clean = gt.speckle_pair(SMALL, noise=0.0, seed=3)
    noisy = gt.speckle_pair(SMALL, noise=0.02, seed=3)
    sigma = 0.02 * np.ptp(clean.template_image)
    assert noisy.info["noise_sigma"] == pytest.approx(sigma)
    for name in ("template_image", "image"):
        residual = getattr(noisy, name) - getattr(clean, name)
        assert residual.std() == pytest.approx(sigma, rel=0.05)
    # Independent noise in the two images.
    a = (noisy.template_image - clean.template_image).ravel()
    b = (noisy.image - clean.image).ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05


# -- (b) particles ----------------------------------------------------------


def test_particles_have_the_stated_density_and_move_with_the_flow():
    case = gt.particle_pair("rotation", shape=(200, 200), noise=0.0)
    particles = case.info["particles"]
    inside = np.all((particles > -0.5) & (particles < 199.5), axis=1)
    expected = 0.05 * 200 * 200
    assert abs(inside.sum() - expected) < 4 * np.sqrt(expected)
    flow = case.info["flow"]
    np.testing.assert_allclose(
        case.info["moved"], particles + flow.displacement(particles)
    )
    # Every particle the second frame sees was drawn in the first.
    moved = case.info["moved"]
    assert moved[:, 0].min() < -3 and moved[:, 0].max() > 202
    assert moved[:, 1].min() < -3 and moved[:, 1].max() > 202


def test_a_particle_is_integrated_over_the_pixels_exactly():
    diameter, point = 2.5, np.array([[10.3, 11.8]])
    image = gt.render_particles(point, (24, 24), diameter, [0.7])
    sigma = diameter / 4
    assert image.sum() == pytest.approx(0.7 * 2 * np.pi * sigma**2, 1e-5)
    # Pixel sampling aliases the centroid by ~exp(-2 pi^2 sigma^2) / pi.
    centroid = ndimage.center_of_mass(image)
    np.testing.assert_allclose(centroid, point[0], atol=3e-4)
    # Peak pixel: the profile's mean over the pixel, by brute force.
    sub = (np.arange(200) + 0.5) / 200 - 0.5
    rows, cols = np.meshgrid(10 + sub, 12 + sub, indexing="ij")
    square = (rows - 10.3) ** 2 + (cols - 11.8) ** 2
    expected = 0.7 * np.exp(-8 * square / diameter**2).mean()
    assert image[10, 12] == pytest.approx(expected, rel=1e-4)


def test_uniform_flow_by_whole_pixels_moves_the_frame():
    flow = gt.uniform_flow((3.0, -2.0))
    case = gt.particle_pair(flow, shape=SMALL, noise=0.0)
    np.testing.assert_allclose(
        case.image[3:, :-2], case.template_image[:-3, 2:], atol=1e-12
    )


def test_uniform_flow_sub_pixel_has_the_stated_sign():
    case = gt.particle_pair("uniform", shape=(128, 128))
    found = registered_shift(case.template_image, case.image)
    np.testing.assert_allclose(found, (2.3, -1.7), atol=0.03)
    np.testing.assert_allclose(
        case.true_position([[50.0, 60.0]]), [[52.3, 58.3]]
    )


@pytest.mark.parametrize("name", gt.FLOWS)
def test_flow_gradients_are_the_derivative_of_the_displacement(name):
    flow = gt.make_flow(name, (256, 256))
    rng = np.random.default_rng(2)
    points = np.r_[
        rng.uniform(0, 255, size=(40, 2)),
        # At and around the centre (the vortex's series branch).
        [[127.5, 127.5], [127.5001, 127.5], [128.0, 127.0], [130, 125]],
    ]
    fd = finite_difference_gradient(flow.displacement, points)
    np.testing.assert_allclose(flow.gradient(points), fd, atol=1e-7)


def test_lamb_oseen_is_tangential_with_the_stated_peaks():
    centre = np.array([100.0, 100.0])
    flow = gt.lamb_oseen(centre, peak_gradient=0.1, core_radius=30.0)
    radii = np.linspace(0.5, 150, 3000)
    angle = 0.7
    points = centre + radii[:, None] * [np.cos(angle), np.sin(angle)]
    u = flow.displacement(points)
    np.testing.assert_allclose(
        ((points - centre) * u).sum(axis=1), 0, atol=1e-12
    )
    speed = np.linalg.norm(u, axis=1)
    assert speed.max() == pytest.approx(0.638 * 0.1 * 30, rel=1e-3)
    assert radii[speed.argmax()] == pytest.approx(1.121 * 30, rel=2e-3)
    # Circulation far out: Gamma = 2 pi G r_c^2.
    far = 2 * np.pi * radii[-1] * speed[-1]
    assert far == pytest.approx(2 * np.pi * 0.1 * 30**2, rel=1e-6)
    grid = np.stack(
        np.meshgrid(*[np.linspace(0, 200, 101)] * 2, indexing="ij"), -1
    ).reshape(-1, 2)
    largest = np.abs(flow.gradient(grid)).max()
    assert largest == pytest.approx(0.1, rel=1e-3)
    np.testing.assert_allclose(
        flow.gradient(centre[None]), [[[0, -0.1], [0.1, 0]]], atol=1e-12
    )


def test_the_empty_disc_has_no_particles():
    case = gt.particle_pair(
        "uniform", shape=SMALL, noise=0.0, empty_disc=(48, 40, 12)
    )
    particles = case.info["particles"]
    assert np.hypot(*(particles - (48, 40)).T).min() > 12
    assert case.info["empty"].sum() == pytest.approx(np.pi * 144, rel=0.05)
    # Dark inside, away from the rim (particles are ~1.5 px in radius).
    inner = np.hypot(*(np.indices(SMALL) - np.array([48, 40])[:, None, None]))
    assert case.template_image[inner < 9].max() < 1e-3


# -- (c-e) textures and no data ---------------------------------------------


def test_texture_shifted_by_whole_pixels_is_the_texture_moved():
    case = gt.shifted_texture(shift=(3, -2), shape=SMALL, noise=0.0)
    np.testing.assert_allclose(
        case.image[3:, :-2], case.template_image[:-3, 2:], atol=1e-9
    )


@pytest.mark.parametrize("texture", ["gravel", "brick"])
def test_texture_sub_pixel_shift_has_the_stated_sign(texture):
    shift = (0.3, 0.4) if texture == "brick" else gt.TEXTURE_SHIFT
    case = gt.shifted_texture(texture, shift, shape=(128, 128), noise=0.0)
    found = registered_shift(case.template_image, case.image)
    np.testing.assert_allclose(found, shift, atol=0.03)
    assert np.all(np.isfinite(case.true_gradient([[5, 5]])))


def test_nan_stripe_has_the_stated_columns():
    case = gt.nan_stripe(width=6, shape=SMALL)
    for image in (case.template_image, case.image):
        missing = np.isnan(image)
        assert missing.sum() == 6 * SMALL[0]
        np.testing.assert_array_equal(
            np.flatnonzero(missing.all(axis=0)), np.arange(45, 51)
        )
    one = gt.nan_stripe(width=6, column=10, in_template=False, shape=SMALL)
    assert not np.isnan(one.template_image).any()
    assert np.isnan(one.image[:, 10:16]).all()
    assert np.isnan(one.image).sum() == 6 * SMALL[0]


def test_striped_no_data_misses_four_rows_in_eleven_other_in_each():
    case = gt.striped_nodata(shape=(110, 64))
    template_rows = np.flatnonzero(np.isnan(case.template_image).all(axis=1))
    image_rows = np.flatnonzero(np.isnan(case.image).all(axis=1))
    assert np.isnan(case.template_image).sum() == 40 * 64
    assert np.isnan(case.image).sum() == 40 * 64
    np.testing.assert_array_equal(
        template_rows % 11, np.tile([0, 1, 2, 3], 10)
    )
    np.testing.assert_array_equal(image_rows % 11, np.tile([5, 6, 7, 8], 10))
    assert not set(template_rows) & set(image_rows)


def test_dead_pixels_have_the_stated_count_and_spare_the_rest():
    case = gt.dead_pixels(0.4, shape=SMALL, seed=4)
    whole = gt.shifted_texture(shape=SMALL, seed=4)
    count = round(0.4 * SMALL[0] * SMALL[1])
    for name in ("template_image", "image"):
        damaged, intact = getattr(case, name), getattr(whole, name)
        missing = np.isnan(damaged)
        assert missing.sum() == count
        np.testing.assert_array_equal(damaged[~missing], intact[~missing])
    # Drawn independently: the two masks overlap as chance would have it.
    both = np.isnan(case.template_image) & np.isnan(case.image)
    assert both.sum() == pytest.approx(0.16 * SMALL[0] * SMALL[1], rel=0.1)


# -- real pairs ---------------------------------------------------------------


def test_motorcycle_truth_is_the_disparity():
    case = gt.stereo_motorcycle()
    disparity = case.info["disparity"]
    known = np.argwhere(np.isfinite(disparity))[::5000]
    truth = case.true_position(known)
    np.testing.assert_array_equal(truth[:, 0], known[:, 0])
    np.testing.assert_allclose(
        truth[:, 1], known[:, 1] - disparity[known[:, 0], known[:, 1]]
    )
    occluded = np.argwhere(~np.isfinite(disparity))[:3]
    assert np.isnan(case.true_position(occluded)).all()
    assert case.true_gradient(known) is None


def test_deformed_sample_truth_solves_its_field_and_agrees_with_the_sample():
    from napari_normxcorr.io._samples import deformation_field

    case = gt.deformed_sample()
    points = case.info["points"]
    truth = case.true_position(points)
    np.testing.assert_allclose(truth, case.info["truth"], atol=2e-3)
    field = deformation_field(case.template_image.shape)
    at = np.stack(
        [ndimage.map_coordinates(f, truth.T, order=3) for f in field], -1
    )
    np.testing.assert_allclose(truth - at, points, atol=1e-8)
    fd = finite_difference_gradient(
        lambda p: case.true_position(p) - p, points, step=0.05
    )
    np.testing.assert_allclose(case.true_gradient(points), fd, atol=1e-4)


# -- seeds, points, errors --------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: gt.speckle_pair(SMALL, seed=seed),
        lambda seed: gt.particle_pair("shear", SMALL, seed=seed),
        lambda seed: gt.dead_pixels(shape=SMALL, seed=seed),
    ],
    ids=["speckle", "particles", "dead pixels"],
)
def test_seeds_reproduce(make):
    first, again, other = make(7), make(7), make(8)
    for name in ("template_image", "image"):
        np.testing.assert_array_equal(
            getattr(first, name), getattr(again, name)
        )
        assert not np.array_equal(
            getattr(first, name), getattr(other, name), equal_nan=True
        )


def test_grid_points_keep_away_from_the_borders_of_both_images():
    case = gt.speckle_pair(SMALL, angle=0, translation=(6, 0), noise=0)
    points = gt.grid_points(case, spacing=8, margin=10)
    assert len(points) > 0
    assert points.min() >= 10 and points.max() <= SMALL[0] - 11
    assert (case.true_position(points)[:, 0] <= SMALL[0] - 11).all()
    boxed = gt.grid_points(case, spacing=4, margin=10, box=((20, 30), (0, 99)))
    assert set(boxed[:, 0]) == {20.0, 24.0, 28.0}


def test_errors_are_distances_from_the_truth():
    case = gt.particle_pair("uniform", shape=SMALL, noise=0)
    points = np.array([[40.0, 40.0], [50.0, 45.0], [60.0, 60.0]])
    matched = case.true_position(points) + [[3, 4], [0, 0], [np.nan, 1]]
    result = SimpleNamespace(points=points, matched=matched)
    np.testing.assert_allclose(
        gt.errors(result, case), [5.0, 0.0, np.nan], equal_nan=True
    )
    np.testing.assert_allclose(
        gt.errors(result, case.true_position(points)),
        [5.0, 0.0, np.nan],
        equal_nan=True,
    )
