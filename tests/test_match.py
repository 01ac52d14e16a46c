"""match_points: known shifts, sub-pixel accuracy, flags, lazy arrays."""

import numpy as np
import pytest
from scipy import ndimage

from napari_normxcorr import MatchResult, Status, match_points


def texture(shape, sigma=1.5, seed=0):
    """Smooth random texture with unit standard deviation."""
    rng = np.random.default_rng(seed)
    values = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return values / values.std()


def fourier_shift(image, shift):
    """`image` moved by `shift` pixels (sub-pixel, periodic)."""
    spectrum = ndimage.fourier_shift(np.fft.fftn(image), shift)
    return np.fft.ifftn(spectrum).real


@pytest.fixture(scope="module")
def pair():
    base = texture((300, 320))
    return base, np.roll(base, (4, -6), axis=(0, 1))


def test_known_integer_shift(pair):
    base, moved = pair
    points = np.array([[100.0, 100.0], [150.5, 200.25], [60, 260]])
    result = match_points(
        base, moved, points, template_radius=12, search_radius=25
    )
    assert isinstance(result, MatchResult)
    np.testing.assert_allclose(result.offset, [[4, -6]] * 3, atol=1e-6)
    np.testing.assert_allclose(
        result.matched, points + np.array([4, -6]), atol=1e-6
    )
    np.testing.assert_allclose(result.score, 1.0, atol=1e-6)
    assert list(result.status) == [Status.OK] * 3
    assert np.all(result.refined)
    np.testing.assert_array_less(result.consistency, 0.05)


def test_image_points_give_the_starting_guess(pair):
    base, moved = pair
    points = np.array([[120.0, 150.0]])
    # Far from the truth, a small search finds nothing; a good guess does.
    guess = points + np.array([5, -5])
    result = match_points(
        base,
        moved,
        points,
        template_radius=8,
        search_radius=12,
        image_points=guess,
    )
    np.testing.assert_allclose(
        result.matched, points + np.array([4, -6]), atol=1e-6
    )


def test_subpixel_accuracy_beats_parabola_and_reaches_a_hundredth():
    """RMS <= 0.01 px on Fourier-shifted texture with 1 % noise.

    Template radius 15 in search radius 25; the parabola fit of the same
    surfaces is about 0.04 px off (the figure in the benchmark).
    """
    rng = np.random.default_rng(1)
    base = texture((256, 256))
    errors, parabola = [], []
    points = rng.uniform(60, 196, size=(12, 2))
    for _ in range(4):
        shift = rng.uniform(-3, 3, size=2)
        moved = fourier_shift(base, shift)
        noisy = [
            im + rng.normal(scale=0.01, size=im.shape) for im in (base, moved)
        ]
        fine = match_points(
            *noisy, points, template_radius=15, search_radius=25
        )
        coarse = match_points(
            *noisy,
            points,
            template_radius=15,
            search_radius=25,
            subpixel=False,
        )
        assert np.all(fine.refined)
        errors.append(fine.offset - shift)
        surfaces = [coarse.surface(i) for i in range(len(points))]
        for i, surface in enumerate(surfaces):
            from napari_normxcorr.core._peaks import (
                argmax_index,
                parabolic_shift,
            )

            peak = argmax_index(surface.values)
            fit = surface.origin + peak + parabolic_shift(surface.values, peak)
            parabola.append(fit - points[i] - shift)
    rms = np.sqrt(np.mean(np.square(errors)))
    rms_parabola = np.sqrt(np.mean(np.square(parabola)))
    assert rms <= 0.01
    assert rms < rms_parabola / 3


def test_surface_peak_sits_under_the_match(pair):
    base, moved = pair
    points = np.array([[100.3, 140.7], [200.0, 80.0]])
    result = match_points(
        base, moved, points, template_radius=10, search_radius=20
    )
    for i in range(len(points)):
        surface = result.surface(i)
        assert surface.values.shape == (21, 21)
        peak = np.unravel_index(surface.values.argmax(), (21, 21))
        np.testing.assert_allclose(surface.origin + peak, result.matched[i])


def test_single_precision_keeps_peaks_and_scores(pair):
    base, moved = pair
    moved = moved + np.random.default_rng(2).normal(
        scale=0.3, size=moved.shape
    )
    points = np.random.default_rng(3).uniform(30, 270, size=(20, 2))
    kwargs = dict(template_radius=10, search_radius=24, subpixel=False)
    single = match_points(
        base, moved, points, fft_precision="single", **kwargs
    )
    double = match_points(
        base, moved, points, fft_precision="double", **kwargs
    )
    np.testing.assert_array_equal(single.matched, double.matched)
    np.testing.assert_allclose(single.score, double.score, atol=1e-4)


def test_rows_line_up_with_input_and_table(pair, tmp_path):
    base, moved = pair
    points = np.array([[100.0, 100.0], [-50.0, 10.0], [150.0, 150.0]])
    result = match_points(
        base, moved, points, template_radius=8, search_radius=16
    )
    assert len(result) == 3
    assert result.status[1] == Status.OUTSIDE_IMAGE
    assert np.isnan(result.matched[1]).all()
    np.testing.assert_allclose(
        result.matched[[0, 2]], points[[0, 2]] + [4, -6], atol=1e-6
    )
    table = result.to_table()
    assert list(table)[:6] == [
        "point-0",
        "point-1",
        "matched-0",
        "matched-1",
        "offset-0",
        "offset-1",
    ]
    assert list(table["status"]) == ["ok", "outside image", "ok"]
    result.to_csv(tmp_path / "result.csv")
    lines = (tmp_path / "result.csv").read_text().splitlines()
    assert len(lines) == 4
    # napari's points CSV (the matches), then every result column.
    assert lines[0].startswith("index,axis-0,axis-1,point-0,point-1,")
    axes = np.array([line.split(",")[1:3] for line in lines[1:]], float)
    np.testing.assert_array_equal(axes, result.matched)


def test_empty_points_give_empty_result(pair):
    result = match_points(*pair, np.empty((0, 2)))
    assert len(result) == 0
    assert result.matched.shape == (0, 2)
    assert result.to_table()["score"].shape == (0,)


def test_wrong_point_dimensionality_names_both_shapes(pair):
    with pytest.raises(ValueError, match=r"\(4, 3\).*2 axes"):
        match_points(*pair, np.zeros((4, 3)))


def test_nan_in_one_window_is_left_out_of_that_row(pair):
    """A NaN is a pixel without data: its window matches on the rest
    (masked NCC, the warp fitted on the pixels with data), the other rows
    as before."""
    base, moved = pair
    moved = moved.copy()
    moved[150, 150] = np.nan
    points = np.array([[150.0, 150.0], [60.0, 60.0]])
    result = match_points(
        base, moved, points, template_radius=8, search_radius=16
    )
    assert list(result.status) == [Status.OK, Status.OK]
    np.testing.assert_allclose(result.matched[0], [154, 144], atol=1e-4)
    assert result.refined.all()
    np.testing.assert_allclose(result.matched[1], [64, 54], atol=1e-6)


def test_radius_too_large_is_clipped_or_flagged(pair):
    base, moved = pair
    # The search radius exceeds the image: clipped, and still exact.
    clipped = match_points(
        base, moved, [[150.0, 160.0]], template_radius=40, search_radius=400
    )
    assert clipped.status[0] == Status.OK
    np.testing.assert_allclose(clipped.matched, [[154, 154]], atol=1e-6)
    # A template window (clipped to the image) wider than the search
    # window cannot be slid over it.
    no_fit = match_points(
        base, moved, [[150.0, 160.0]], template_radius=400, search_radius=100
    )
    assert no_fit.status[0] == Status.NO_FIT
    assert np.isnan(no_fit.score[0])


def test_flat_template_and_low_score_and_border():
    rng = np.random.default_rng(4)
    base = texture((200, 200))
    base[20:60, 20:60] = 3.0
    noise = rng.normal(size=base.shape)
    moved = np.roll(base, (0, 8), axis=(0, 1))
    result = match_points(
        base,
        np.where(np.arange(200)[None, :] < 120, moved, noise),
        [[40.0, 40.0], [100.0, 150.0], [100.0, 60.0]],
        template_radius=8,
        search_radius=16,
    )
    assert result.status[0] == Status.FLAT_TEMPLATE
    assert result.status[1] == Status.LOW_SCORE
    # Shift 8 = search radius 16 - template radius 8: peak on the border.
    assert result.status[2] == Status.ON_BORDER


def test_repetitive_texture_is_ambiguous():
    stripes = np.tile(texture((60, 10), seed=5), (1, 20))
    result = match_points(
        stripes, stripes, [[30.0, 100.0]], template_radius=4, search_radius=30
    )
    assert result.status[0] == Status.AMBIGUOUS
    assert result.distinctiveness[0] < 0.05


def test_inconsistent_match_is_flagged():
    """The template image holds the point's patch twice; the target once.

    The forward match is unique, but matching back from it lands on the
    other, noise-free copy 13 pixels from the point.
    """
    target = texture((200, 200), seed=7)
    noise = np.random.default_rng(9).normal(scale=0.1, size=target.shape)
    template_image = target + noise
    template_image[81:94, 94:107] = target[94:107, 94:107]
    result = match_points(
        template_image,
        target,
        [[100.0, 100.0]],
        template_radius=6,
        search_radius=20,
    )
    np.testing.assert_allclose(result.matched, [[100, 100]], atol=0.1)
    assert result.consistency[0] == pytest.approx(13, abs=0.3)
    assert result.status[0] == Status.INCONSISTENT


def test_time_planes_are_matched_in_their_own_plane():
    """(t, row, col) points match plane t of both stacks."""
    frames = np.stack([texture((120, 130), seed=s) for s in range(3)])
    moved = np.roll(frames, (2, 3), axis=(1, 2))
    points = np.array([[0.0, 60, 60], [2.0, 50, 70], [1.2, 40.5, 80]])
    result = match_points(
        frames, moved, points, template_radius=8, search_radius=16
    )
    expected = points + np.array([0, 2, 3])
    expected[2, 0] = 1.2
    np.testing.assert_allclose(result.matched, expected, atol=1e-6)
    assert list(result.status) == [Status.OK] * 3


def test_3d_matching_with_three_radii():
    volume = texture((40, 50, 60), sigma=1.0)
    moved = np.roll(volume, (1, -2, 3), axis=(0, 1, 2))
    result = match_points(
        volume,
        moved,
        [[20.0, 25.0, 30.0]],
        template_radius=(4, 5, 5),
        search_radius=(8, 9, 9),
    )
    np.testing.assert_allclose(result.offset, [[1, -2, 3]], atol=1e-6)


class CountingSource:
    """A huge virtual image whose pixels are made on demand and counted."""

    def __init__(self, shape, shift=(0, 0)):
        self.shape = shape
        self.dtype = np.dtype(np.float32)
        self.ndim = len(shape)
        self.shift = shift
        self.pixels_read = 0

    def __getitem__(self, index):
        rows, cols = (
            np.arange(*s.indices(n)) for s, n in zip(index, self.shape)
        )
        r = rows[:, None] - self.shift[0]
        c = cols[None, :] - self.shift[1]
        # Deterministic texture from the coordinates (an integer hash).
        h = (r * 73856093) ^ (c * 19349663)
        values = ((h % 1000003) / 1000003.0).astype(np.float32)
        self.pixels_read += values.size
        return values


def test_lazy_dask_array_reads_only_the_windows():
    """1000 POIs on a 20000 x 20000 dask array read only a small part."""
    da = pytest.importorskip("dask.array")
    source = CountingSource((20000, 20000))
    target = CountingSource((20000, 20000), shift=(2, -3))
    template_image = da.from_array(source, chunks=(256, 256))
    image = da.from_array(target, chunks=(256, 256))
    rng = np.random.default_rng(8)
    points = rng.uniform(100, 19900, size=(1000, 2))
    result = match_points(
        template_image,
        image,
        points,
        template_radius=5,
        search_radius=10,
        subpixel=False,
        check_consistency=False,
    )
    np.testing.assert_allclose(result.offset, [[2, -3]] * 1000, atol=1e-9)
    total = 20000 * 20000
    assert source.pixels_read + target.pixels_read < 0.2 * total


def test_stereo_motorcycle_against_ground_truth_disparity():
    """POIs on textured, non-occluded pixels of the left image land at
    (row, col - disparity) in the right one; ok rows are wrong far less
    often than flagged rows."""
    data = pytest.importorskip("skimage.data")
    from skimage.color import rgb2gray

    left, right, disparity = data.stereo_motorcycle()
    left, right = rgb2gray(left), rgb2gray(right)
    # Local standard deviation over 15 x 15 pixels: where there is texture.
    variance = (
        ndimage.uniform_filter(left**2, 15)
        - ndimage.uniform_filter(left, 15) ** 2
    )
    spread = np.sqrt(np.maximum(variance, 0))
    usable = np.isfinite(disparity) & (spread > 0.05)
    usable[:40] = usable[-40:] = False
    usable[:, :120] = usable[:, -40:] = False
    candidates = np.argwhere(usable)
    rng = np.random.default_rng(0)
    points = candidates[rng.choice(len(candidates), 300, replace=False)]
    points = points.astype(float)
    truth = (
        points
        - np.c_[np.zeros(len(points)), disparity[tuple(points.astype(int).T)]]
    )
    result = match_points(
        left,
        right,
        points,
        template_radius=10,
        search_radius=(12, 45),
        image_points=points - [0, 35],
    )
    wrong = np.linalg.norm(result.matched - truth, axis=1) > 2.0
    ok = result.status == Status.OK
    assert np.mean(~wrong) >= 0.7
    assert np.mean(wrong[ok]) <= 0.2
    assert np.mean(wrong[~ok]) >= 2 * np.mean(wrong[ok])


def test_kept_surfaces_equal_recomputed_ones(pair):
    base, moved = pair
    points = np.array([[100.0, 100.0], [150.5, 200.25]])
    kept = match_points(
        base,
        moved,
        points,
        template_radius=8,
        search_radius=16,
        keep_surfaces=True,
    )
    fresh = match_points(
        base, moved, points, template_radius=8, search_radius=16
    )
    for i in range(2):
        a, b = kept.surface(i), fresh.surface(i)
        np.testing.assert_allclose(a.values, b.values, atol=1e-6)
        np.testing.assert_allclose(a.origin, b.origin)


@pytest.mark.parametrize("seed", range(5))
def test_second_peak_is_the_best_local_maximum_outside_the_main_one(seed):
    from napari_normxcorr.core._peaks import peak_half_widths, second_peak

    surface = texture((60, 70), sigma=2.0, seed=seed)
    surface /= np.abs(surface).max()
    peak = np.unravel_index(np.argmax(surface), surface.shape)
    reach = [max(w, 2) for w in peak_half_widths(surface, peak)]
    is_maximum = surface >= ndimage.maximum_filter(
        surface, size=3, mode="constant", cval=-np.inf
    )
    near = tuple(slice(max(p - r, 0), p + r + 1) for p, r in zip(peak, reach))
    is_maximum[near] = False
    expected = np.unravel_index(
        np.argmax(np.where(is_maximum, surface, -np.inf)), surface.shape
    )
    index, value = second_peak(surface.astype(np.float32))
    assert index == expected
    assert value == pytest.approx(surface[expected], abs=1e-6)


def test_second_peak_without_another_maximum():
    from napari_normxcorr.core._peaks import peak_half_widths, second_peak

    rows, cols = np.mgrid[:30, :40]
    bump = -((rows - 12.0) ** 2) - (cols - 20.0) ** 2  # one maximum only
    r0, r1 = peak_half_widths(bump, (12, 20))
    outside = bump.copy()
    outside[12 - r0 : 12 + r0 + 1, 20 - r1 : 20 + r1 + 1] = -np.inf
    index, value = second_peak(bump)  # the best value outside, then
    assert value == outside.max() == bump[index]
    assert second_peak(np.ones((3, 3)))[0] is None


@pytest.mark.parametrize("shape", [(3, 40, 50), (2, 12, 13, 14)])
def test_local_maxima_match_a_maximum_filter(shape):
    from napari_normxcorr.core._peaks import local_maxima

    values = np.random.default_rng(5).normal(size=shape)
    values[0, 3:6, 3:6] = 9.0  # a plateau: all of it counts
    size = (1,) + (3,) * (len(shape) - 1)
    expected = values >= ndimage.maximum_filter(
        values, size=size, mode="constant", cval=-np.inf
    )
    np.testing.assert_array_equal(local_maxima(values), expected)


@pytest.mark.parametrize("shape", [(31, 31), (4, 30), (3, 3), (7, 9, 11)])
def test_stacked_peaks_equal_one_surface_at_a_time(shape):
    """Peaks, second peaks, shifts and covariances of a stack of surfaces
    are those of each surface alone, to the bit."""
    from napari_normxcorr.core import _peak_covariance, _peaks

    sigma = (0,) + (1.5,) * len(shape)
    rng = np.random.default_rng(3)
    stack = ndimage.gaussian_filter(rng.normal(size=(9, *shape)), sigma)
    stack = (stack / np.abs(stack).max()).astype(np.float32)
    stack[2] = 0.5  # flat: no second peak outside the main one's reach
    peaks = _peaks.argmax_indices(stack)
    scores = stack[(np.arange(9), *peaks.T)].astype(float)
    pixels = np.arange(9) * 50 + 10
    index, second = _peaks.second_peaks(stack, peaks)
    shifts = _peaks.parabolic_shifts(stack, peaks)
    covariance = _peak_covariance.peak_covariances(
        stack, peaks, scores, pixels
    )
    for k, surface in enumerate(stack):
        peak = _peaks.argmax_index(surface)
        assert peak == tuple(peaks[k])
        alone = _peaks.second_peak(surface)
        assert (alone[0] is None) == (index[k, 0] < 0)
        np.testing.assert_array_equal(alone[1], second[k])
        np.testing.assert_array_equal(
            _peaks.parabolic_shift(surface, peak), shifts[k]
        )
        np.testing.assert_array_equal(
            _peak_covariance.peak_covariance(
                surface, peak, scores[k], pixels[k]
            ),
            covariance[k],
        )


def test_results_do_not_depend_on_the_batch_size(pair):
    """Small windows are worked on many batches at a time: every column
    stays what each batch alone gives, whatever the batch size."""
    base, moved = pair
    rng = np.random.default_rng(4)
    points = rng.uniform(-5, 320, (60, 2))
    runs = [
        match_points(
            base,
            moved,
            points,
            template_radius=6,
            search_radius=14,
            batch_size=size,
        )
        for size in (1, 3, 8, 1000)
    ]
    for other in runs[1:]:
        for name in ("matched", "score", "second_score", "covariance"):
            np.testing.assert_array_equal(
                getattr(runs[0], name), getattr(other, name)
            )
        assert list(runs[0].status) == list(other.status)


class ChunkCounter:
    """A zarr array that counts the chunks its reads decode."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, 2
        self.chunks = array.chunks
        self.decoded = []

    def __getitem__(self, index):
        rows, cols = (s.indices(n) for s, n in zip(index, self.shape))
        (c0, c1) = self.chunks
        self.decoded += [
            (i, j)
            for i in range(rows[0] // c0, -(-rows[1] // c0))
            for j in range(cols[0] // c1, -(-cols[1] // c1))
        ]
        return self.array[index]


def test_zarr_chunks_are_decoded_once_per_run(tmp_path):
    """Neighbouring windows share their chunks: each chunk of a zarr image
    is decoded once, and the result is that of the same pixels in memory."""
    zarr = pytest.importorskip("zarr")
    rng = np.random.default_rng(3)
    values = ndimage.gaussian_filter(rng.normal(size=(512, 512)), 2)
    moved = ndimage.shift(values, (1.5, -2.25), order=3)
    stored = []
    for name, pixels in (("template", values), ("image", moved)):
        array = zarr.open(
            str(tmp_path / f"{name}.zarr"),
            mode="w",
            shape=pixels.shape,
            chunks=(128, 128),
            dtype="f8",
        )
        array[:] = pixels
        stored.append(ChunkCounter(zarr.open(str(array.store_path), mode="r")))
    points = rng.uniform(40, 472, (300, 2))
    lazy = match_points(*stored, points, template_radius=8, search_radius=12)
    in_memory = match_points(
        values, moved, points, template_radius=8, search_radius=12
    )
    for name in ("matched", "score", "uncertainty", "consistency"):
        np.testing.assert_array_equal(
            getattr(lazy, name), getattr(in_memory, name)
        )
    assert list(lazy.status) == list(in_memory.status)
    for counter in stored:
        assert len(counter.decoded) == len(set(counter.decoded)) <= 16


def test_a_covariance_left_out_is_rebuilt_over_the_matched_axes():
    """Points on a stack of planes carry a plane coordinate; covariances
    are over the matched axes, also when a copy leaves them out."""
    import dataclasses

    rng = np.random.default_rng(4)
    planes = ndimage.gaussian_filter(rng.normal(size=(2, 64, 64)), (0, 2, 2))
    points = np.array([[0, 32.0, 30.0], [1, 30.0, 34.0]])
    result = match_points(
        planes, planes, points, template_radius=6, search_radius=9
    )
    assert result.covariance.shape == (2, 2, 2)
    copy = dataclasses.replace(result, covariance=np.empty(0))
    assert copy.covariance.shape == (2, 2, 2)
    assert np.isnan(copy.covariance).all()
