"""normalized_median_residual: the normalized median test over neighbours."""

import itertools

import numpy as np
import pytest

from napari_normxcorr.matching._neighbours import normalized_median_residual


def affine_field(points, noise=0.05, seed=0):
    """A smooth displacement (affine, small gradient) with a little noise."""
    rng = np.random.default_rng(seed)
    gradient = np.array([[0.004, -0.003], [0.002, 0.005]])
    offsets = points @ gradient.T + [1.5, -2.0]
    return offsets + rng.normal(scale=noise, size=offsets.shape)


def grid(n=12, spacing=10.0, jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    axis = np.arange(n) * spacing
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
    points = points.reshape(-1, 2)
    return points + rng.uniform(-jitter, jitter, size=points.shape)


def brute_force(points, offsets, neighbours, epsilon, valid, minimum, reach):
    """The same test by loops: each point's neighbours, its prediction
    from them, its error; the weights of the components; the weighted
    error over the median of the neighbours' weighted errors, and along
    a component the neighbours share, the error over theirs alone."""
    n = len(points)
    pool = [j for j in range(n) if valid[j]]
    nearest = []
    for j in pool:
        distances = sorted(
            np.linalg.norm(points[j] - points[m]) for m in pool if m != j
        )
        nearest.append(distances[0])
    spacing = float(np.median(nearest))
    around, error = [], np.full(offsets.shape, np.nan)
    for i in range(n):
        others = sorted(
            (np.linalg.norm(points[i] - points[j]), j) for j in pool if j != i
        )[:neighbours]
        chosen = [j for dist, j in others if dist <= reach * spacing]
        around.append(chosen)
        if chosen:
            error[i] = offsets[i] - predict_by_loops(
                (points[chosen] - points[i]) / spacing,
                offsets[chosen],
                epsilon,
            )
    scale = np.nanmedian(np.abs(error[pool]), axis=0) + epsilon
    weight = np.exp(np.mean(np.log(scale))) / scale
    length = np.linalg.norm(error * weight, axis=1)
    residual = np.full(n, np.nan)
    enough = np.zeros(n, dtype=bool)
    for i, chosen in enumerate(around):
        if len(chosen) < minimum:
            continue
        enough[i] = True
        residual[i] = length[i] / (np.median(length[chosen]) + epsilon)
        for c in range(offsets.shape[1]):
            values = offsets[chosen, c]
            if np.median(np.abs(values - np.median(values))) <= epsilon:
                typical = np.median(np.abs(error[chosen, c]))
                alone = abs(error[i, c]) / (typical + epsilon)
                residual[i] = max(residual[i], alone)
    return residual, enough


def predict_by_loops(relative, values, floor):
    """Least squares, leaving out up to two neighbours farthest off, when
    it fits all the rest within 2 floor; else the least-median fit over
    every triangle of neighbours, refitted on its inliers; the median
    with too few neighbours or none spanning the plane."""
    count, d = relative.shape
    if count < 2 * (d + 1):
        return np.median(values, axis=0)
    design = np.c_[relative, np.ones(count)]
    kept = list(range(count))
    for trim in range(3):
        coefficients, fitted = fit_by_loops(design[kept], values[kept])
        misfit = design[kept] @ coefficients - values[kept]
        error = np.linalg.norm(misfit, axis=1)
        if fitted and error.max() <= 2 * floor:
            return coefficients[-1]
        if trim == 2 or len(kept) <= 2 * (d + 1):
            break
        del kept[int(np.argmax(error))]
    best, coefficients = np.inf, None
    for subset in itertools.combinations(range(count), d + 1):
        corners = design[list(subset)]
        if abs(np.linalg.det(corners)) < 0.1:
            continue
        found = np.linalg.solve(corners, values[list(subset)])
        misfit = np.median(np.linalg.norm(design @ found - values, axis=1))
        if misfit < best:
            best, coefficients = misfit, found
    if coefficients is None:
        return np.median(values, axis=0)
    error = np.linalg.norm(design @ coefficients - values, axis=1)
    inliers = error <= max(2.5 * 1.4826 * best, floor)
    refit, fitted = fit_by_loops(design[inliers], values[inliers])
    if fitted and inliers.sum() >= d + 2:
        coefficients = refit
    return coefficients[-1]


def fit_by_loops(design, values):
    normal = design.T @ design
    if np.linalg.det(normal) < 0.01:
        return np.zeros((design.shape[1], values.shape[1])), False
    return np.linalg.solve(normal, design.T @ values), True


def test_a_planted_outlier_stands_out_of_a_smooth_field():
    points = grid(jitter=1.0)
    offsets = affine_field(points)
    outlier = 5 * 12 + 7
    offsets[outlier] += [0.0, 3.0]
    residual, enough = normalized_median_residual(points, offsets)
    assert enough.all()
    assert residual[outlier] > 2
    assert np.all(np.delete(residual, outlier) < 2)


@pytest.mark.parametrize(
    ("neighbours", "epsilon", "minimum", "noise"),
    # Noisy: the least-median fits; quiet: least squares, some trimmed.
    [(8, 0.1, 3, 0.3), (5, 0.05, 2, 0.3), (8, 0.1, 3, 0.02)],
)
def test_equals_a_brute_force_reference(neighbours, epsilon, minimum, noise):
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 100, size=(80, 2))
    points[:3] += 400  # a far-away cluster of three
    offsets = affine_field(points, noise=noise, seed=2)
    offsets[rng.choice(80, 6, replace=False)] += rng.normal(
        scale=4, size=(6, 2)
    )
    valid = rng.uniform(size=80) > 0.15
    residual, enough = normalized_median_residual(
        points,
        offsets,
        neighbours=neighbours,
        epsilon=epsilon,
        valid=valid,
        min_neighbours=minimum,
    )
    expected, expected_enough = brute_force(
        points, offsets, neighbours, epsilon, valid, minimum, 4.0
    )
    np.testing.assert_array_equal(enough, expected_enough)
    np.testing.assert_allclose(residual, expected, rtol=1e-12)
    assert not enough[:3].any()  # too far from the rest, too few together


def test_an_isolated_point_is_not_judged():
    points = np.vstack([grid(), [[1000.0, 1000.0]]])
    offsets = affine_field(points)
    offsets[-1] += 50  # unlike everything, but nothing near to compare
    residual, enough = normalized_median_residual(points, offsets)
    assert not enough[-1] and np.isnan(residual[-1])
    assert enough[:-1].all() and np.isfinite(residual[:-1]).all()


def test_invalid_points_serve_as_no_ones_neighbour():
    points = grid(jitter=1.0)
    offsets = affine_field(points)
    bad = [13, 14, 26, 40, 77]  # a small cluster and strays
    offsets[bad] += 30.0
    valid = np.ones(len(points), dtype=bool)
    valid[bad] = False
    residual, enough = normalized_median_residual(points, offsets, valid=valid)
    # As if the invalid points were not there at all ...
    kept = np.flatnonzero(valid)
    alone, alone_enough = normalized_median_residual(
        points[kept], offsets[kept]
    )
    np.testing.assert_array_equal(residual[kept], alone)
    np.testing.assert_array_equal(enough[kept], alone_enough)
    assert np.all(residual[kept] < 2)
    # ... while they are still tested against the valid ones.
    assert enough[bad].all() and np.all(residual[bad] > 2)


def test_non_finite_offsets_are_invalid_by_default():
    points = grid()
    offsets = affine_field(points)
    offsets[20] = np.nan
    with_nan, enough = normalized_median_residual(points, offsets)
    valid = np.ones(len(points), dtype=bool)
    valid[20] = False
    explicit, _ = normalized_median_residual(
        points, np.nan_to_num(offsets, nan=1e6), valid=valid
    )
    assert np.isnan(with_nan[20]) and enough[20]
    np.testing.assert_array_equal(
        np.delete(with_nan, 20), np.delete(explicit, 20)
    )


def test_too_few_points_judge_nothing():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    residual, enough = normalized_median_residual(points, np.zeros((3, 2)))
    assert not enough.any() and np.isnan(residual).all()


def test_a_quiet_component_is_judged_on_its_own():
    # Rectified stereo: the row offsets are 0 to within noise, the column
    # offsets (disparities) vary and are noisy. A match 0.5 px off in rows
    # is wrong, though the length of its error hides among the columns'
    # (1.9 as vectors alike).
    rng = np.random.default_rng(3)
    points = grid(n=16, spacing=20.0)
    offsets = np.c_[
        rng.normal(scale=0.02, size=len(points)),
        -20 - 0.02 * points[:, 1] + rng.normal(scale=0.5, size=len(points)),
    ]
    odd = 7 * 16 + 8
    offsets[odd, 0] += 0.5
    residual, _ = normalized_median_residual(points, offsets)
    assert residual[odd] > 4
    # The same deviation along the noisy columns is nothing special.
    offsets[odd] = offsets[odd + 1] + [0.0, 0.5]
    residual, _ = normalized_median_residual(points, offsets)
    assert residual[odd] < 2.5


def test_a_line_of_points_falls_back_to_the_median():
    # No triangle of neighbours spans the plane: no affine fit, the
    # neighbours' median predicts, as in Westerweel and Scarano's test.
    rng = np.random.default_rng(4)
    points = np.c_[np.zeros(60), np.arange(60) * 10.0]
    offsets = rng.normal(scale=0.05, size=(60, 2)) + [1.0, -2.0]
    offsets[30] += [0.0, 4.0]
    residual, enough = normalized_median_residual(points, offsets)
    assert enough.all()
    assert residual[30] > 10
    assert np.all(np.delete(residual, 30) < 2.5)


def test_three_d_grids_use_their_26_neighbours():
    rng = np.random.default_rng(5)
    axis = np.arange(10) * 12.0
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)
    points = points.reshape(-1, 3)
    # A swirl about the z axis whose rate falls off with height: smooth,
    # not affine.
    centred = points - 54.0
    rate = 0.05 * np.exp(-centred[:, 0] / 60.0)
    offsets = np.c_[
        np.full(len(points), 0.5),
        -rate * centred[:, 2],
        rate * centred[:, 1],
    ] + rng.normal(scale=0.05, size=points.shape)
    wrong = rng.choice(len(points), 50, replace=False)
    offsets[wrong] += rng.choice([-1, 1], (50, 3)) * rng.uniform(2, 6, (50, 3))
    residual, enough = normalized_median_residual(points, offsets)
    assert enough.all()
    right = np.ones(len(points), dtype=bool)
    right[wrong] = False
    assert np.mean(residual[right] > 2.5) <= 0.01
    assert np.mean(residual[wrong] > 2.5) >= 0.95


def test_a_wrong_offset_within_the_neighbours_spread_is_caught():
    # A 3 degree rotation on a 48 px grid: neighbours' offsets differ by
    # 2.4 px, and the median of the offsets around a point, as the paper
    # takes it, hides a 2 px error; the local trend does not.
    angle = np.deg2rad(3)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    points = grid(n=11, spacing=48.0)
    centred = points - points.mean(axis=0)
    offsets = centred @ rotation.T - centred
    offsets += np.random.default_rng(6).normal(scale=0.05, size=offsets.shape)
    odd = 5 * 11 + 4
    offsets[odd] += [1.4, -1.4]
    residual, _ = normalized_median_residual(points, offsets)
    assert residual[odd] > 2.5
    assert np.all(np.delete(residual, odd) < 2.5)


@pytest.mark.parametrize(
    "shape",
    [[(0, 0), (1, 0), (0, 1)], [(0, 0), (1, 0), (0, 1), (1, 1)]],
    ids=["L of 3", "block of 4"],
)
def test_a_cluster_of_wrong_offsets_is_judged_by_the_others(shape):
    # Offsets alike and wrong, side by side (a repeated texture's next
    # period): a third or more of their neighbours' neighbours are wrong,
    # spoiling those predictions. Judged again without the points over
    # the limit, the suspects are caught and the right ones cleared.
    points = grid()
    offsets = affine_field(points, seed=1)
    cluster = [(5 + a) * 12 + 6 + b for a, b in shape]
    offsets[cluster] += [-2.0, 0.3]
    right = np.ones(len(points), dtype=bool)
    right[cluster] = False
    once, _ = normalized_median_residual(points, offsets)
    twice, _ = normalized_median_residual(points, offsets, limit=2.5)
    assert np.any(right & (once > 2.5))
    assert np.all(twice[cluster] > 2.5)
    assert not np.any(right & (twice > 2.5))
