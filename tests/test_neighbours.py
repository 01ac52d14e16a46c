"""normalized_median_residual: the normalized median test over neighbours."""

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
    """The same test by loops and sorting, for comparison."""
    n = len(points)
    pool = [j for j in range(n) if valid[j]]
    nearest = []
    for j in pool:
        distances = sorted(
            np.hypot(*(points[j] - points[m])) for m in pool if m != j
        )
        nearest.append(distances[0])
    spacing = np.sort(nearest)
    middle = len(spacing) // 2
    if len(spacing) % 2:
        spacing = spacing[middle]
    else:
        spacing = (spacing[middle - 1] + spacing[middle]) / 2
    residual = np.full(n, np.nan)
    enough = np.zeros(n, dtype=bool)
    for i in range(n):
        others = sorted(
            (np.hypot(*(points[i] - points[j])), j) for j in pool if j != i
        )[:neighbours]
        chosen = [j for d, j in others if d <= reach * spacing]
        if len(chosen) < minimum:
            continue
        enough[i] = True
        worst = 0.0
        for component in range(offsets.shape[1]):
            values = np.sort(offsets[chosen, component])
            median = median_of_sorted(values)
            spread = median_of_sorted(np.sort(np.abs(values - median)))
            worst = max(
                worst,
                abs(offsets[i, component] - median) / (spread + epsilon),
            )
        residual[i] = worst
    return residual, enough


def median_of_sorted(values):
    middle = len(values) // 2
    if len(values) % 2:
        return values[middle]
    return (values[middle - 1] + values[middle]) / 2


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
    ("neighbours", "epsilon", "minimum"), [(8, 0.1, 3), (5, 0.05, 2)]
)
def test_equals_a_brute_force_reference(neighbours, epsilon, minimum):
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 100, size=(80, 2))
    points[:3] += 400  # a far-away cluster of three
    offsets = affine_field(points, noise=0.3, seed=2)
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
