"""The widget on layers far larger than memory: only windows are read."""

import numpy as np
import pytest

from helpers import open_widget, run_and_wait

da = pytest.importorskip("dask.array")

SIZE, CHUNK = 32_768, 1024  # 8 GiB of float64 per level-0 image
SHIFT = (3.0, -5.0)
# Incommensurate frequencies: a smooth texture that never repeats here.
_RNG = np.random.default_rng(11)
_FREQUENCIES = _RNG.uniform(0.15, 0.6, size=(12, 2))
_PHASES = _RNG.uniform(0, 2 * np.pi, size=12)


def _texture(rows, cols):
    values = np.zeros(np.broadcast(rows, cols).shape)
    for (a, b), phase in zip(_FREQUENCIES, _PHASES):
        values += np.sin(a * rows + b * cols + phase)
    return values


def pyramid(shift, reads):
    """Three levels; level 0 is computed block by block, each read logged."""

    def block(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        reads.append((r0, c0))
        rows, cols = np.mgrid[r0:r1, c0:c1].astype(float)
        return _texture(rows - shift[0], cols - shift[1])

    level0 = da.map_blocks(
        block, chunks=((CHUNK,) * (SIZE // CHUNK),) * 2, dtype=float
    )
    coarse = [np.zeros((SIZE // 16, SIZE // 16)), np.zeros((512, 512))]
    return [level0, *(da.from_array(c) for c in coarse)]


def test_a_huge_lazy_multiscale_layer_is_read_window_by_window(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    reads_before, reads_after = [], []
    viewer.add_image(
        pyramid((0.0, 0.0), reads_before), multiscale=True, name="before"
    )
    viewer.add_image(
        pyramid(SHIFT, reads_after), multiscale=True, name="after"
    )
    points = np.array([[5000.0, 7000.0], [20000.5, 15000.25], [30000, 1000]])
    viewer.add_points(points, name="pois")
    widget = open_widget(viewer)
    widget.template_radius.value = 10
    widget.search_radius.value = (20, 20)
    reads_before.clear()
    reads_after.clear()
    run_and_wait(widget)
    result = widget.result
    np.testing.assert_allclose(result.offset, [SHIFT] * 3, atol=0.02)
    # Each point's windows lie in one chunk: a handful of chunks read of
    # the 1024 per image (the consistency check reads the same ones).
    assert 0 < len(set(reads_before)) <= 3
    assert 0 < len(set(reads_after)) <= 3
