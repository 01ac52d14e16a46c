"""The consistency check against a brute-force back-match.

The coarse-to-fine search (binned whole range, fine search around the
point, checks of the rivals) must find what a search of the whole range
at full resolution finds: skimage's match_template over every position,
then the same parabola fit.
"""

import numpy as np
import pytest
from skimage.feature import match_template

from helpers import texture
from napari_normxcorr import Status, match_points
from napari_normxcorr._back_match import _coarse_to_fine_pays

R, S = 8, 30  # template and search radius: coarse to fine applies


def brute_back_match(template_image, image, point, match, r, s):
    """Distance from `point` to the best match, anywhere within `s` of
    it in `template_image`, of the template around `match` in `image`;
    and the surface's best score and second local maximum."""
    r, s = np.broadcast_to(r, 2), np.broadcast_to(s, 2)
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
    for axis in range(2):
        if 0 < peak[axis] < surface.shape[axis] - 1:
            step = np.eye(2, dtype=int)[axis]
            left, mid, right = (
                surface[tuple(peak + k * step)] for k in (-1, 0, 1)
            )
            corner[axis] += (left - right) / (2 * (left - 2 * mid + right))
    back = low + corner + (match - start)
    return float(np.linalg.norm(back - point))


def matched_pair(seed, shape=(260, 250), shift=(5.3, -7.6)):
    """A texture, and a copy shifted by `shift` with some noise."""
    from scipy import ndimage

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


@pytest.mark.parametrize("seed", [0, 1])
def test_coarse_to_fine_finds_the_brute_force_back_match(seed):
    before, after = matched_pair(seed)
    points = random_points(80, before.shape, S + 1, seed)
    assert len(points) * (2 * S + 1) ** 2 >= 2 * before.size  # it applies
    check_against_brute_force(before, after, points, R, S)


def test_a_better_copy_far_from_the_point_is_found():
    """The template image holds each point's patch twice: a noisy one at
    the point, an exact one (14, 14) px away. Matching back from the
    (right) forward match lands on the exact copy: every row fails
    consistency, at the distance of the copy."""
    rng = np.random.default_rng(4)
    target = texture((240, 240), seed=11)
    template_image = target + rng.normal(scale=0.3, size=target.shape)
    axis = np.arange(30, 201, 34)
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1)
    points = points.reshape(-1, 2)
    for r, c in points:
        patch = target[r - R : r + R + 1, c - R : c + R + 1]
        template_image[r + 14 - R : r + 15 + R, c + 14 - R : c + 15 + R] = (
            patch
        )
    assert len(points) * (2 * S + 1) ** 2 >= 2 * target.size  # it applies
    result = check_against_brute_force(
        template_image, target, points.astype(float), R, S
    )
    np.testing.assert_allclose(result.matched, points, atol=0.5)
    np.testing.assert_allclose(result.consistency, 14 * np.sqrt(2), atol=0.6)
    assert (result.status == Status.INCONSISTENT).all()


def test_repetitive_texture_matches_the_brute_force():
    """Stripes repeat every 12 px: many rivals score alike."""
    tile = texture((260, 12), seed=3)
    before = np.tile(tile, (1, 21))
    before += np.random.default_rng(5).normal(scale=0.1, size=before.shape)
    after = np.roll(before, (3, -2), axis=(0, 1))
    after = after + np.random.default_rng(6).normal(
        scale=0.1, size=after.shape
    )
    points = random_points(80, before.shape, S + 1, 7)
    check_against_brute_force(before, after, points, R, S)


def test_points_at_the_edges_and_odd_sizes():
    """Windows clipped at the edges of images of odd sizes (the binned
    images lose their last row and column)."""
    before, after = matched_pair(2, shape=(201, 187), shift=(2.5, 3.5))
    rng = np.random.default_rng(8)
    edges = np.c_[rng.uniform(0, 200, 60), rng.choice([1.0, 185.0], 60)]
    inner = random_points(60, before.shape, S, 9)
    points = np.concatenate([edges, edges[:, ::-1].clip(0, 186), inner])
    check_against_brute_force(before, after, points, R, S)


def test_anisotropic_radii():
    """Wide along columns only, as in stereo: the fine search covers the
    whole range along rows."""
    before, after = matched_pair(3, shift=(0.0, -11.3))
    points = random_points(100, before.shape, 50, 10)
    check_against_brute_force(before, after, points, (7, 10), (10, 45))


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

    wide = matcher(8, 30)
    assert _coarse_to_fine_pays(wide, 80)
    assert not _coarse_to_fine_pays(wide, 1)  # binning costs more
    assert not _coarse_to_fine_pays(matcher(8, 20), 80)  # a narrow range
    assert not _coarse_to_fine_pays(matcher(3, 30), 80)  # tiny when binned
    assert not _coarse_to_fine_pays(matcher(8, 30, nodata=-100.0), 80)
