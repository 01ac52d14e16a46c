"""The consistency check against a brute-force back-match.

The coarse-to-fine search (the whole range reduced, fine search around the
point, checks of the rivals) must find what a search of the whole range
at full resolution finds: skimage's match_template over every position,
then the same parabola fit.
"""

import numpy as np
import pytest
from scipy import ndimage
from skimage.feature import match_template

from helpers import texture
from napari_normxcorr import Status, match_points
from napari_normxcorr.core._peaks import parabolic_heights
from napari_normxcorr.matching._back_match import _coarse_to_fine_pays, _halved

# Template and search radii where coarse to fine applies: reduced 2 times,
# and 4 times (large templates).
RADII = [(8, 64), (32, 96)]


def brute_back_match(template_image, image, point, match, r, s):
    """Distance from `point` to the best match, anywhere within `s` of
    it in `template_image`, of the template around `match` in `image`."""
    d = len(point)
    r, s = np.broadcast_to(r, d), np.broadcast_to(s, d)
    at = np.rint(match).astype(int)
    start = np.maximum(at - r, 0)
    template = image[tuple(slice(a, b) for a, b in zip(start, at + r + 1))]
    centre = np.rint(point).astype(int)
    low = np.maximum(centre - s, 0)
    search = template_image[
        tuple(slice(a, b) for a, b in zip(low, centre + s + 1))
    ]
    surface = match_template(search, template)
    peak = np.array(np.unravel_index(np.argmax(surface), surface.shape))
    corner = peak.astype(float)
    for axis in range(d):
        if 0 < peak[axis] < surface.shape[axis] - 1:
            step = np.eye(d, dtype=int)[axis]
            left, mid, right = (
                surface[tuple(peak + k * step)] for k in (-1, 0, 1)
            )
            corner[axis] += (left - right) / (2 * (left - 2 * mid + right))
    back = low + corner + (match - start)
    return float(np.linalg.norm(back - point))


def matched_pair(seed, shape=(360, 340), shift=(5.3, -7.6)):
    """A texture, and a copy shifted by `shift` with some noise."""
    before = texture(shape, seed)
    after = ndimage.shift(before, shift, order=3, mode="reflect")
    noise = np.random.default_rng(seed + 100).normal(scale=0.2, size=shape)
    return before, after + noise


def random_points(count, shape, margin, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(margin, np.array(shape) - margin - 1, (count, 2))


def check_against_brute_force(before, after, points, r, s, **kwargs):
    result = match_points(
        before, after, points, template_radius=r, search_radius=s, **kwargs
    )
    checked = np.flatnonzero(np.isfinite(result.consistency))
    assert len(checked) > 0.8 * len(points)
    expected = np.array(
        [
            brute_back_match(before, after, points[k], result.matched[k], r, s)
            for k in checked
        ]
    )
    np.testing.assert_allclose(
        result.consistency[checked], expected, atol=0.02
    )
    return result


def applies(points, r, s, *images):
    """Whether match_points takes the coarse-to-fine path for these."""
    result = match_points(
        *images, points[:1], template_radius=r, search_radius=s
    )
    return _coarse_to_fine_pays(result._context, len(points))


@pytest.mark.parametrize(("r", "s"), RADII)
@pytest.mark.parametrize("seed", [0, 1])
def test_coarse_to_fine_finds_the_brute_force_back_match(seed, r, s):
    before, after = matched_pair(seed)
    points = random_points(60, before.shape, s, seed)
    assert applies(points, r, s, before, after)
    check_against_brute_force(before, after, points, r, s)


@pytest.mark.parametrize(("r", "s", "size"), [(8, 64, 300), (32, 128, 500)])
def test_a_better_copy_far_from_the_point_is_found(r, s, size):
    """The template image holds each point's patch twice: a noisy one at
    the point, an exact one beside it, 2r + 3 px to the right (an odd
    offset: between the coarse pixels). Matching back from the (right)
    forward match lands on the exact copy: every row fails consistency,
    at the distance of the copy."""
    rng = np.random.default_rng(4)
    target = texture((size, size), seed=11)
    template_image = target + rng.normal(scale=0.3, size=target.shape)
    offset = 2 * r + 3
    ys = np.arange(s + 1, size - s - 1, offset)
    xs = np.arange(s + 1, size - s - 1, 2 * offset)
    points = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    for y, x in points:
        patch = target[y - r : y + r + 1, x - r : x + r + 1]
        template_image[
            y - r : y + r + 1, x + offset - r : x + offset + r + 1
        ] = patch
    points = points.astype(float)
    assert applies(points, r, s, template_image, target)
    result = check_against_brute_force(template_image, target, points, r, s)
    np.testing.assert_allclose(result.matched, points, atol=0.5)
    np.testing.assert_allclose(result.consistency, offset, atol=0.6)
    assert (result.status == Status.INCONSISTENT).all()


def test_repetitive_texture_matches_the_brute_force():
    """Stripes repeat every 12 px: many rivals score alike."""
    r, s = RADII[0]
    tile = texture((300, 12), seed=3)
    before = np.tile(tile, (1, 25))
    before += np.random.default_rng(5).normal(scale=0.1, size=before.shape)
    after = np.roll(before, (3, -2), axis=(0, 1))
    after += np.random.default_rng(6).normal(scale=0.1, size=after.shape)
    points = random_points(80, before.shape, s, 7)
    assert applies(points, r, s, before, after)
    check_against_brute_force(before, after, points, r, s)


def test_points_at_the_edges_and_odd_sizes():
    """Windows clipped at the edges (searched in full) of images of odd
    sizes (the last pixel of an odd length has one neighbour)."""
    r, s = RADII[0]
    before, after = matched_pair(2, shape=(331, 317), shift=(2.5, 3.5))
    rng = np.random.default_rng(8)
    edges = np.c_[rng.uniform(0, 330, 60), rng.choice([1.0, 315.0], 60)]
    inner = random_points(60, before.shape, s, 9)
    points = np.concatenate([edges, edges[:, ::-1].clip(0, 316), inner])
    assert applies(points, r, s, before, after)
    check_against_brute_force(before, after, points, r, s)


def test_anisotropic_radii():
    """Wide along columns only, as in stereo: the fine search covers the
    whole range along rows."""
    before, after = matched_pair(3, shape=(300, 600), shift=(0.0, -31.3))
    r, s = (20, 24), (32, 140)
    points = random_points(60, before.shape, 140, 10)
    points[:, 0] = np.linspace(33, 266, 60)
    assert applies(points, r, s, before, after)
    check_against_brute_force(before, after, points, r, s)


def test_volumes():
    """Radii of three entries match in 3-D: reduced along all three."""
    rng = np.random.default_rng(12)
    before = texture((70, 80, 90), seed=12)
    after = ndimage.shift(before, (1.3, -2.6, 3.2), order=3, mode="wrap")
    after += rng.normal(scale=0.2, size=after.shape)
    r, s = (6, 6, 6), (24, 24, 24)
    points = rng.uniform(25, 44, size=(40, 3))
    assert applies(points, r, s, before, after)
    check_against_brute_force(before, after, points, r, s)


def test_coarse_to_fine_applies_only_where_it_pays():
    before, after = matched_pair(0)

    def matcher(r, s, **kwargs):
        result = match_points(
            before,
            after,
            [[100.0, 100.0]],
            template_radius=r,
            search_radius=s,
            **kwargs,
        )
        return result._context

    wide = matcher(8, 64)
    assert _coarse_to_fine_pays(wide, 80)
    assert not _coarse_to_fine_pays(wide, 1)  # binning costs more
    assert not _coarse_to_fine_pays(matcher(50, 64), 80)  # a narrow range
    assert not _coarse_to_fine_pays(matcher(3, 64), 80)  # tiny when reduced
    assert not _coarse_to_fine_pays(matcher(8, 40), 80)  # a small window
    assert not _coarse_to_fine_pays(matcher(8, 64, nodata=-100.0), 80)


@pytest.mark.parametrize("length", [7, 8])
def test_halving_is_a_121_filter_at_even_pixels(length):
    """Against numpy: reflect-pad, weights 1, 2, 1, keep pixels 0, 2, 4..."""
    image = np.random.default_rng(length).normal(size=(3, length, 5))
    kept = image.copy()
    halved = _halved(image, 1, np.float64)
    padded = np.pad(image, [(0, 0), (1, 1), (0, 0)], mode="reflect")
    filtered = padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:]
    np.testing.assert_allclose(halved, filtered[:, ::2], atol=1e-12)
    np.testing.assert_array_equal(image, kept)


def test_parabolic_heights_are_the_vertices_of_sampled_paraboloids():
    """Surfaces sampled off the top of a paraboloid: each local maximum's
    height is the paraboloid's top, two peaks on one surface included."""
    rng = np.random.default_rng(13)
    rows, cols = np.mgrid[0:9, 0:11].astype(float)
    tops = rng.uniform(0.5, 1, size=(6, 2))
    surfaces, stack, peaks, expected = [], [], [], []
    for k in range(6):
        # One paraboloid per surface; the first three also hold a second,
        # lower one far away (the larger of the two wherever they meet).
        y, x = rng.uniform(1.5, 3.5), rng.uniform(1.5, 3.5)
        first = tops[k, 0] - 0.1 * (rows - y) ** 2 - 0.05 * (cols - x) ** 2
        surface, found = first, [((round(y), round(x)), tops[k, 0])]
        if k < 3:
            y2, x2 = y + 4.2, x + 5.3
            second = (
                tops[k, 1] - 0.1 * (rows - y2) ** 2 - 0.05 * (cols - x2) ** 2
            )
            surface = np.maximum(first, second)
            found.append(((round(y2), round(x2)), tops[k, 1]))
        surfaces.append(surface)
        for peak, top in found:
            stack.append(k)
            peaks.append(peak)
            expected.append(top)
    heights = parabolic_heights(
        np.array(surfaces), np.array(stack), np.array(peaks)
    )
    np.testing.assert_allclose(heights, expected, atol=1e-12)
