"""dask arrays small enough to hold are computed once, not per window."""

import dask.array as da
import numpy as np
from dask.callbacks import Callback
from scipy import ndimage

from napari_normxcorr import match_points, track_points
from napari_normxcorr.io._chunk_cache import cached


class Computes(Callback):
    """Counts the dask computations started within."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def _start(self, dsk):
        self.count += 1


def images():
    rng = np.random.default_rng(0)
    a = ndimage.gaussian_filter(rng.normal(size=(256, 256)), 2)
    return a, np.roll(a, (3, -2), (0, 1)), rng.uniform(40, 216, (60, 2))


def test_match_points_computes_a_small_dask_array_once():
    a, b, points = images()
    lazy_a, lazy_b = da.from_array(a, chunks=64), da.from_array(b, chunks=64)
    with Computes() as computes:
        lazy = match_points(
            lazy_a, lazy_b, points, template_radius=10, search_radius=20
        )
    eager = match_points(a, b, points, template_radius=10, search_radius=20)
    # Once per image (and once more each for the consistency check's
    # reading the other way round), not once per window.
    assert computes.count <= 4
    np.testing.assert_array_equal(lazy.offset, eager.offset)
    np.testing.assert_array_equal(lazy.status, eager.status)


def test_track_points_computes_a_small_dask_stack_once():
    a, _, points = images()
    stack = np.stack([np.roll(a, (k, -k), (0, 1)) for k in range(4)])
    lazy = da.from_array(stack, chunks=(1, 128, 128))
    start = np.column_stack([np.zeros(20), points[:20]])
    with Computes() as computes:
        tracked = track_points(
            lazy, start, template_radius=10, search_radius=20
        )
    assert computes.count <= 2
    expected = track_points(stack, start, template_radius=10, search_radius=20)
    np.testing.assert_array_equal(tracked.position, expected.position)


def test_a_large_dask_array_stays_lazy():
    big = da.zeros((4096, 4096), chunks=1024)
    assert cached(big, limit=2**20) is big
    small = da.zeros((64, 64), chunks=16)
    assert isinstance(cached(small), np.ndarray)
