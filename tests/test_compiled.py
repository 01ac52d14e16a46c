"""The compiled kernels (numba, the ``fast`` extra) against the numpy
paths they stand in for, on ground-truth pairs; and numba kept out of
the package until a kernel is asked for."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from ground_truth import (
    errors,
    grid_points,
    nan_stripe,
    particle_pair,
    speckle_pair,
)
from napari_normxcorr import (
    Status,
    match_points,
    normalized_cross_correlation,
)
from napari_normxcorr.core._compiled import (
    enabled,
    numpy_only,
    warm_up_in_background,
)
from napari_normxcorr.core._peaks import second_peaks
from napari_normxcorr.core._variance import VarianceMap
from napari_normxcorr.matching import KERNEL_MODULES
from napari_normxcorr.matching._motions import motion_gaps

pytestmark = pytest.mark.skipif(
    not enabled(), reason="numba is not installed (the fast extra)"
)


def _both(function):
    """`function()` with the kernels, then with numpy only."""
    compiled = function()
    with numpy_only():
        return compiled, function()


def _assert_same_matches(compiled, plain, atol=1e-9):
    np.testing.assert_array_equal(compiled.status, plain.status)
    for name in ("matched", "score", "uncertainty", "gradient", "covariance"):
        np.testing.assert_allclose(
            getattr(compiled, name), getattr(plain, name), atol=atol
        )
    np.testing.assert_allclose(
        compiled.motion_gap, plain.motion_gap, atol=1e-12
    )


def _two_motions(seed):
    """Windows whose right halves moved 6 px and whose left did not, and
    windows of one motion, flat parts and white noise: (templates,
    searches, peaks, shifts) with gains 0, > 0 and NaN."""
    rng = np.random.default_rng(seed)
    before = ndimage.gaussian_filter(rng.normal(size=(140, 160)), 2.0)
    after = np.roll(before, 6, axis=1)
    after[:, :80] = before[:, :80]
    templates, searches, peaks = [], [], []
    for r, c in [(60, 80), (60, 40), (70, 120), (30, 78)]:
        templates.append(before[r - 10 : r + 11, c - 10 : c + 11])
        searches.append(after[r - 20 : r + 21, c - 20 : c + 21])
        peaks.append((10, 10))
    flat = np.ones((21, 21))
    flat[:, 15:] = before[:21, :6]  # left quadrants flat, right half-textured
    templates += [flat, rng.random((21, 21))]
    searches += [searches[0], rng.random((41, 41))]
    peaks += [(0, 20), (20, 3)]  # offsets off the window's edges
    templates = np.array(templates, dtype=np.float32)
    shifts = rng.uniform(-0.5, 0.5, (len(peaks), 2))
    return templates, searches, np.array(peaks), shifts


@pytest.mark.parametrize("seed", range(3))
def test_motion_gaps_compiled_equal_numpy(seed):
    gaps = _two_motions(seed)
    compiled, plain = _both(lambda: motion_gaps(*gaps))
    np.testing.assert_allclose(compiled, plain, atol=1e-12)
    assert compiled[0] > 0.1  # the window across the edge: two motions
    assert np.isnan(compiled[-1])  # white noise has no texture


def _matched_both(case, points, template_radius, search_radius):
    """match_points on a ground-truth case with the kernels and without;
    the two must agree. Returns the compiled run's result."""
    compiled, plain = _both(
        lambda: match_points(
            case.template_image,
            case.image,
            points,
            template_radius=template_radius,
            search_radius=search_radius,
        )
    )
    _assert_same_matches(compiled, plain)
    return compiled


def test_warps_on_rotating_speckle_compiled_equal_numpy():
    case = speckle_pair(angle=3.0, noise=0.01, seed=1)
    points = grid_points(case, spacing=16, margin=34)
    compiled = _matched_both(case, points, 15, 25)
    ok = compiled.status == Status.OK
    assert ok.mean() >= 0.8
    assert errors(compiled, case)[ok].max() <= 0.1


def test_warps_across_missing_pixels_compiled_equal_numpy():
    # NaN columns in the target: crops with holes, samples refused.
    case = nan_stripe(width=6, seed=3)
    points = grid_points(case, spacing=8, margin=30, box=None)
    compiled = _matched_both(case, points, 10, 20)
    assert (compiled.status == Status.OK).mean() >= 0.5


def test_warps_in_a_vortex_compiled_equal_numpy():
    case = particle_pair("lamb-oseen", shape=(256, 256), seed=2)
    points = grid_points(case, spacing=16, margin=36)
    compiled = _matched_both(case, points, 16, 28)
    ok = compiled.status == Status.OK
    assert errors(compiled, case)[ok].max() <= 0.5


@pytest.mark.parametrize("precision", ["single", "double"])
@pytest.mark.parametrize("mode", ["full", "valid"])
def test_whole_image_ncc_compiled_equals_numpy(mode, precision):
    # A plane with flat patches and an offset far above its texture.
    rng = np.random.default_rng(5)
    image = 1e4 + ndimage.gaussian_filter(rng.normal(size=(300, 420)), 2)
    image[40:90, 100:200] = 1e4
    template = image[100:131, 200:241].copy()
    compiled, plain = _both(
        lambda: normalized_cross_correlation(
            template, image, mode, fft_precision=precision
        )
    )
    np.testing.assert_allclose(compiled, plain, rtol=0, atol=1e-12)
    # Windows inside the flat patch carry no pattern: exactly 0.
    r, c = (30, 40) if mode == "full" else (0, 0)
    assert np.all(compiled[40 + r : 60 + r, 100 + c : 160 + c] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_variance_maps_compiled_equal_numpy(dtype):
    rng = np.random.default_rng(6)
    plane = (60000 + 50 * rng.random((260, 310))).astype(dtype)
    plane[:80, :90] = plane[0, 0]  # a flat corner: infinite variance
    plane.flags.writeable = False  # as read from some files
    compiled, plain = _both(lambda: VarianceMap(plane, (21, 25)).energy)
    np.testing.assert_allclose(compiled, plain, rtol=1e-9)
    assert np.isinf(compiled[0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_second_peaks_compiled_equal_numpy(dtype):
    rng = np.random.default_rng(7)
    surfaces = ndimage.gaussian_filter(
        rng.normal(size=(12, 41, 53)), (0, 2, 2)
    ).astype(dtype)
    surfaces[1, ::2] = surfaces[1, 0, 0]  # plateaus: ties
    surfaces[2, 10:14, 20:30] = np.nan  # unscored positions
    surfaces[3] = np.linspace(0, 1, 53)  # one maximum, in the box
    surfaces[4, :, :3] = 5.0  # the best at the left edge
    surfaces[5, :1] = 7.0  # and along the top
    peaks = np.stack(
        [np.unravel_index(np.nanargmax(s), s.shape) for s in surfaces]
    )
    peaks[3] = (20, 52)
    compiled, plain = _both(lambda: second_peaks(surfaces, peaks))
    np.testing.assert_array_equal(compiled[0], plain[0])
    np.testing.assert_array_equal(compiled[1], plain[1])
    assert (compiled[0] >= 0).all()  # each has a second peak


@pytest.mark.parametrize("shape", [(3, 140, 140), (2, 9, 17), (1, 2, 5)])
def test_spline_coefficients_are_scipys(shape):
    from napari_normxcorr.matching._warp_kernels import spline_coefficients

    boxes = np.random.default_rng(len(shape)).normal(size=shape)
    expected = boxes.copy()
    for axis in (1, 2):
        ndimage.spline_filter1d(
            expected, order=3, axis=axis, mode="mirror", output=expected
        )
    spline_coefficients(boxes)
    np.testing.assert_allclose(boxes, expected, rtol=0, atol=1e-12)


def test_warm_up_loads_every_kernel_in_a_thread():
    warm_up_in_background(KERNEL_MODULES).join(timeout=120)
    assert all(name in sys.modules for name in KERNEL_MODULES)


def test_runs_take_numpy_until_the_warm_up_loads_the_kernels():
    # In a fresh interpreter: the warm-up's own interpreter takes a
    # second or more before this one loads anything.
    script = (
        "from napari_normxcorr.core._compiled import compiled,"
        " warm_up_in_background\n"
        "from napari_normxcorr.matching import KERNEL_MODULES\n"
        "thread = warm_up_in_background(KERNEL_MODULES)\n"
        "early = compiled(KERNEL_MODULES[0])\n"
        "thread.join(300)\n"
        "print(early is None, compiled(KERNEL_MODULES[0]) is not None)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["True", "True"]


def _modules_after(code, environment=None):
    """The modules a fresh interpreter has imported after `code`."""
    script = f"import sys\n{code}\nprint(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    return set(out.stdout.split())


_MATCH = (
    "import numpy as np\n"
    "from napari_normxcorr import match_points\n"
    "rng = np.random.default_rng(0)\n"
    "image = rng.random((80, 80))\n"
    "match_points(image, np.roll(image, 2, axis=0), [[40.0, 40.0]],"
    " template_radius=8, search_radius=16)"
)


def test_numba_waits_for_the_first_kernel():
    assert "numba" not in _modules_after("import napari_normxcorr")
    assert "numba" in _modules_after(_MATCH)


def test_the_environment_turns_the_kernels_off():
    import os

    environment = dict(os.environ, NAPARI_NORMXCORR_NUMBA="0")
    assert "numba" not in _modules_after(_MATCH, environment)
