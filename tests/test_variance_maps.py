"""Variance maps: window variances, and matching many points with them."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from napari_normxcorr import match_points
from napari_normxcorr.core._variance import VarianceMap
from napari_normxcorr.io import _chunk_cache
from napari_normxcorr.matching import _correlation
from reference import brute_force_ncc


def n_variance(values, box):
    """n * variance of every window, straight from numpy."""
    windows = sliding_window_view(np.asarray(values, float), box)
    axes = tuple(range(-len(box), 0))
    return windows.var(axis=axes) * np.prod(box)


@pytest.mark.parametrize(
    ("shape", "box", "start", "out_shape"),
    [
        ((40, 50), (7, 9), (2, 1), (20, 30)),
        ((12, 14, 16), (3, 4, 5), (0, 1, 2), (10, 9, 10)),
    ],
)
def test_variance_matches_numpy(shape, box, start, out_shape, kernel_path):
    rng = np.random.default_rng(0)
    # uint16 near the top of its range: centring keeps float64 exact.
    plane = rng.integers(60000, 60100, size=shape).astype(np.uint16)
    variance_map = VarianceMap(plane, box)
    out = np.empty(out_shape)
    variance_map.norms(start, 1.0, out)
    region = plane[
        tuple(
            slice(s, s + o + m - 1) for s, o, m in zip(start, out_shape, box)
        )
    ]
    np.testing.assert_allclose(out, n_variance(region, box), atol=1e-6)


def test_flat_windows_get_infinite_variance():
    rng = np.random.default_rng(1)
    plane = rng.normal(30000, 3000, size=(200, 220))
    plane[50:120, 60:150] = 65535.0  # saturated: no variance at all
    variance_map = VarianceMap(plane, (11, 11))
    out = np.empty((40, 60))
    variance_map.norms((60, 70), 2.0, out)
    assert np.all(out == np.inf)
    # ...while textured windows are far above the rounding level.
    variance_map.norms((0, 0), 2.0, out)
    assert np.isfinite(out).all()
    assert out.min() > 1e6 * variance_map.noise


@pytest.fixture
def counted_maps(monkeypatch):
    """Counts the variance maps match_points builds."""
    built = []

    class Counted(VarianceMap):
        def __init__(self, plane, box):
            super().__init__(plane, box)
            built.append(plane.shape)

    monkeypatch.setattr(_correlation, "VarianceMap", Counted)
    return built


def with_surfaces(base, moved, points, template_radius, search_radius):
    """match_points in double precision, keeping the surfaces, without
    the back-match (whose maps would count too)."""
    return match_points(
        base,
        moved,
        points,
        template_radius=template_radius,
        search_radius=search_radius,
        keep_surfaces=True,
        fft_precision="double",
        check_consistency=False,
    )


def test_many_points_use_maps_and_keep_exact_surfaces(counted_maps):
    rng = np.random.default_rng(2)
    base = ndimage.gaussian_filter(rng.normal(size=(90, 100)), 1.2)
    base = (base * 4000 + 50000).astype(np.uint16)
    moved = np.roll(base, (3, -2), axis=(0, 1))
    moved[60:, :40] = 65535  # a saturated corner: flat windows
    points = rng.uniform(5, 85, size=(150, 2))
    result = with_surfaces(base, moved, points, 4, 9)
    assert counted_maps == [(90, 100)]
    for i in range(0, 150, 7):
        surface = result.surface(i)
        r, c = np.rint(points[i]).astype(int)
        template = base[max(r - 4, 0) : r + 5, max(c - 4, 0) : c + 5]
        top, left = max(r - 9, 0), max(c - 9, 0)
        search = moved[top : r + 10, left : c + 10]
        if template.shape[0] > search.shape[0] or (
            template.shape[1] > search.shape[1]
        ):
            continue
        expected = brute_force_ncc(template, search, "valid")
        np.testing.assert_allclose(surface.values, expected, atol=1e-9)


def test_maps_change_no_match(counted_maps, monkeypatch):
    rng = np.random.default_rng(3)
    base = ndimage.gaussian_filter(rng.normal(size=(120, 130)), 1.5)
    moved = np.roll(base, (2, 5), axis=(0, 1)).astype(np.float32)
    points = rng.uniform(10, 110, size=(120, 2))
    kwargs = dict(template_radius=6, search_radius=12, subpixel=False)
    with_maps = match_points(base, moved, points, **kwargs)
    assert len(counted_maps) == 2  # forward, and back for consistency
    monkeypatch.setattr(_correlation, "MAX_MAP_PIXELS", 0)
    without = match_points(base, moved, points, **kwargs)
    assert len(counted_maps) == 2
    np.testing.assert_array_equal(with_maps.matched, without.matched)
    np.testing.assert_allclose(with_maps.score, without.score, atol=1e-5)
    assert list(with_maps.status) == list(without.status)


def test_a_faint_patch_in_a_mapped_plane_is_matched_on_its_own(counted_maps):
    # The plane is in range as a whole, so windows trust their sums for
    # the range; a patch of values near 1e-20 must still be scaled up
    # (its squares would underflow) and matched on its own texture.
    rng = np.random.default_rng(5)
    base = ndimage.gaussian_filter(rng.normal(size=(160, 160)), 1.5)
    base[50:110, 50:110] *= 1e-20
    moved = np.roll(base, (2, -3), axis=(0, 1))
    faint = np.array([[80.0, 80.0], [78.0, 84.0]])
    around = rng.uniform(15, 145, size=(120, 2))
    points = np.vstack([faint, around])
    result = with_surfaces(base, moved, points, 5, 12)
    assert counted_maps == [(160, 160)]
    np.testing.assert_allclose(result.offset[:2], [[2, -3]] * 2, atol=1e-3)
    for i in range(2):
        surface = result.surface(i)
        r, c = np.rint(points[i]).astype(int)
        template = base[r - 5 : r + 6, c - 5 : c + 6]
        search = moved[r - 12 : r + 13, c - 12 : c + 13]
        expected = brute_force_ncc(template, search, "valid")
        np.testing.assert_allclose(surface.values, expected, atol=1e-9)


def test_lazy_and_non_finite_planes_get_no_maps(counted_maps, monkeypatch):
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(4)
    base = ndimage.gaussian_filter(rng.normal(size=(100, 100)), 1.5)
    points = rng.uniform(12, 88, size=(120, 2))
    kwargs = dict(template_radius=5, search_radius=10, subpixel=False)
    lazy = da.from_array(base, chunks=50)
    # A dask array too large for the chunk cache stays lazy: no map.
    small = _chunk_cache.CACHE_BYTES
    monkeypatch.setattr(_chunk_cache, "CACHE_BYTES", 1024)
    match_points(lazy, base, points, **kwargs)
    assert counted_maps == [(100, 100)]  # the in-memory one only
    # One that fits is computed once, and gets its map as numpy does.
    monkeypatch.setattr(_chunk_cache, "CACHE_BYTES", small)
    counted_maps.clear()
    match_points(lazy, base, points, **kwargs)
    assert counted_maps == [(100, 100), (100, 100)]
    counted_maps.clear()
    with_nan = base.copy()
    with_nan[0, 0] = np.nan
    result = match_points(base, with_nan, points, **kwargs)
    assert counted_maps == [(100, 100)]  # the back match
    assert np.isfinite(result.score).all()


def test_3d_matching_with_maps_keeps_exact_surfaces(counted_maps):
    rng = np.random.default_rng(6)
    volume = ndimage.gaussian_filter(rng.normal(size=(40, 42, 44)), 1.0)
    moved = np.roll(volume, (1, -2, 1), axis=(0, 1, 2))
    points = rng.uniform(8, 32, size=(160, 3))
    result = match_points(
        volume,
        moved,
        points,
        template_radius=(3, 3, 3),
        search_radius=(6, 6, 6),
        keep_surfaces=True,
        fft_precision="double",
        subpixel=False,
    )
    assert counted_maps[0] == (40, 42, 44)
    assert np.mean(result.status == "ok") > 0.9
    for i in (0, 50, 100):
        r = np.rint(points[i]).astype(int)
        template = volume[tuple(slice(c - 3, c + 4) for c in r)]
        search = moved[tuple(slice(c - 6, c + 7) for c in r)]
        expected = brute_force_ncc(template, search, "valid")
        np.testing.assert_allclose(
            result.surface(i).values, expected, atol=1e-9
        )
