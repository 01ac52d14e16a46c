"""The tracker's small-window NCC (_small_ncc, _coarse) and second peaks
against brute-force references and the general path (match_points)."""

import dataclasses
import itertools

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from helpers import texture
from napari_normxcorr import Status, match_points
from napari_normxcorr.core._peaks import half_widths, second_peaks
from napari_normxcorr.core._small_ncc import TemplateBank, box_sums, small_ncc
from napari_normxcorr.matching._shape_functions import ShapeFunction
from napari_normxcorr.tracking._coarse import CoarseSearch
from napari_normxcorr.tracking._track_inputs import Options
from napari_normxcorr.tracking._tracker import BANK_BYTES, Tracker
from reference import brute_force_ncc

TOLERANCE = {np.float32: 2e-4, np.float64: 1e-9}
# The verdicts of match_points that CoarseSearch gives too; the tracker
# reads the others (which judge a pair of images) as ok.
COARSE_VERDICTS = (Status.OK, Status.LOW_SCORE, Status.ON_BORDER)


def bank_of(templates, window_shape, fft_dtype):
    """A bank holding `templates` in rows 0, 1, ..."""
    templates = np.asarray(templates)
    n = len(templates)
    bank = TemplateBank(
        n, templates.shape[1:], window_shape, fft_dtype, key_length=1
    )
    bank.put(np.arange(n), np.zeros((n, 1), int), templates)
    return bank


def flat_positions(window, template_shape):
    """Which template positions of `window` cover constant values."""
    boxes = sliding_window_view(window, template_shape)
    axes = tuple(range(window.ndim, 2 * window.ndim))
    return np.ptp(boxes, axis=axes) == 0


@pytest.mark.parametrize("fft_dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("template_shape", "window_shape"),
    [
        ((7, 9), (21, 25)),
        ((3, 5), (8, 6)),
        ((5, 6), (5, 6)),
        ((5, 5, 4), (9, 11, 10)),
    ],
)
def test_small_ncc_is_the_brute_force_ncc(
    fft_dtype, template_shape, window_shape
):
    """Random textures, a template used by several windows: each surface
    is the 'valid' NCC of its window and template."""
    # Of different spreads: each row's energy counts.
    templates = [(1 + k) * texture(template_shape, k) for k in range(3)]
    windows = [texture(window_shape, seed) for seed in range(10, 14)]
    rows = np.array([2, 0, 1, 2])
    bank = bank_of(templates, window_shape, fft_dtype)
    surfaces, scored = small_ncc(bank, rows, windows)
    assert scored.all() and bank.usable.all() and not bank.flat.any()
    for surface, window, row in zip(surfaces, windows, rows):
        expected = brute_force_ncc(templates[row], window, "valid")
        np.testing.assert_allclose(
            surface, expected, rtol=0, atol=TOLERANCE[fft_dtype]
        )


@pytest.mark.parametrize("fft_dtype", [np.float32, np.float64])
def test_offset_and_partly_constant_windows(fft_dtype):
    """A window on a large offset keeps its digits; positions over the
    constant part of a window score exactly 0, never rounding noise."""
    template = texture((7, 9), 1)
    offset = 1e6 + texture((21, 25), 2)
    partly = 1e3 + texture((21, 25), 3)
    partly[:, :13] = 1e3 + 0.1
    bank = bank_of([template], (21, 25), fft_dtype)
    surfaces, scored = small_ncc(bank, np.array([0, 0]), [offset, partly])
    assert scored.all()
    for surface, window in zip(surfaces, [offset, partly]):
        expected = brute_force_ncc(template, window, "valid")
        np.testing.assert_allclose(
            surface, expected, rtol=0, atol=TOLERANCE[fft_dtype]
        )
    flat = flat_positions(partly, template.shape)
    assert flat.sum() >= 20
    assert np.all(surfaces[1][flat] == 0)


@pytest.mark.parametrize("fft_dtype", [np.float32, np.float64])
def test_flat_and_non_finite_templates(fft_dtype):
    """A constant template is flat and scores 0 everywhere; one holding
    NaN is not usable."""
    window = texture((21, 25), 4)
    nan = texture((7, 9), 5)
    nan[3, 4] = np.nan
    templates = [texture((7, 9), 6), np.full((7, 9), 2.5), nan]
    bank = bank_of(templates, window.shape, fft_dtype)
    np.testing.assert_array_equal(bank.flat, [False, True, False])
    np.testing.assert_array_equal(bank.usable, [True, False, False])
    surfaces, scored = small_ncc(bank, np.array([0, 1]), [window, window])
    assert scored.all()
    assert np.all(surfaces[1] == 0)
    assert np.ptp(surfaces[0]) > 0.5


@pytest.mark.parametrize("fft_dtype", [np.float32, np.float64])
def test_windows_that_cannot_be_scored(fft_dtype):
    """Windows holding NaN, or too large or small for the transforms, are
    not scored (the general path scales them); the others are, each as if
    alone."""
    template = texture((7, 9), 7)
    window = texture((21, 25), 8)
    nan = window.copy()
    nan[10, 3] = np.nan
    scales = [1e-300, 1e-158, 1e150, 1e200]
    windows = [window, 1e8 * window, nan, *(s * window for s in scales)]
    bank = bank_of([template], window.shape, fft_dtype)
    surfaces, scored = small_ncc(bank, np.zeros(7, int), windows)
    np.testing.assert_array_equal(scored, [True, True] + [False] * 5)
    alone, _ = small_ncc(bank, np.array([0]), [window])
    np.testing.assert_array_equal(surfaces[0], alone[0])
    np.testing.assert_allclose(
        surfaces[1], alone[0], rtol=0, atol=TOLERANCE[fft_dtype]
    )


# Magnitudes each precision must score (beyond, it may hand them on).
SCORED_MAGNITUDES = {np.float32: (1e-14, 1e14), np.float64: (1e-120, 1e119)}


@pytest.mark.parametrize("fft_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exponent", range(-300, 301, 20))
def test_any_magnitude_is_scored_right_or_handed_on(fft_dtype, exponent):
    """Template and window scaled by 10**exponent: the surface is the NCC,
    or the template is not usable or the window not scored; never a
    surface of garbage (a product of two energies overflowing), and
    within the range of each precision, always scored."""
    scale = 10.0**exponent
    template, window = texture((7, 9), 9), texture((21, 25), 10)
    bank = bank_of([scale * template], window.shape, fft_dtype)
    surfaces, scored = small_ncc(bank, np.array([0]), [scale * window])
    low, high = SCORED_MAGNITUDES[fft_dtype]
    if low <= scale <= high:
        assert bank.usable[0] and scored[0]
    if bank.usable[0] and scored[0]:
        expected = brute_force_ncc(template, window, "valid")
        np.testing.assert_allclose(
            surfaces[0], expected, rtol=0, atol=TOLERANCE[fft_dtype]
        )


@pytest.mark.parametrize(
    ("shape", "box"),
    [
        ((11,), (4,)),
        ((7, 9), (3, 5)),
        ((5, 6, 7), (2, 3, 4)),
        ((3, 8, 9), (4, 2)),
    ],
)
def test_box_sums_are_sums_over_every_box(shape, box):
    """Every box's sum, over the last axes (leading axes are a stack);
    each array of the stack summed as if alone, to the bit."""
    values = np.random.default_rng(0).normal(size=shape) * 100
    sums = box_sums(values, box)
    stack = shape[: len(shape) - len(box)]
    starts = [range(n - m + 1) for n, m in zip(shape[len(stack) :], box)]
    assert sums.shape == (*stack, *map(len, starts))
    for lead in itertools.product(*map(range, stack)):
        for start in itertools.product(*starts):
            inside = tuple(slice(a, a + m) for a, m in zip(start, box))
            expected = values[(*lead, *inside)].sum()
            assert sums[(*lead, *start)] == pytest.approx(expected, abs=1e-9)
    if stack:
        alone = box_sums(values[:1], box)
        np.testing.assert_array_equal(sums[:1], alone)


def test_bank_rows_are_replaced_only_for_their_rows():
    """Rows are stale until put, and again when their key changes; a put
    replaces the templates of its rows alone."""
    window = texture((15, 15), 9)
    templates = np.stack([(1 + k) * texture((5, 5), k) for k in range(3)])
    expected = [brute_force_ncc(t, window, "valid") for t in templates]
    bank = TemplateBank(3, (5, 5), (15, 15), np.float64, key_length=2)
    rows, keys = np.arange(3), np.array([[0, 1], [0, 2], [1, 1]])
    assert bank.stale(rows, keys).all()
    bank.put(rows[:2], keys[:2], templates[:2])
    np.testing.assert_array_equal(bank.stale(rows, keys), [0, 0, 1])
    before, _ = small_ncc(bank, rows[:2], [window, window])
    np.testing.assert_allclose(before, expected[:2], rtol=0, atol=1e-9)
    moved = keys.copy()
    moved[1, 1] = 3
    np.testing.assert_array_equal(bank.stale(rows, moved), [0, 1, 1])
    bank.put(rows[1:2], moved[1:2], templates[2:])
    assert not bank.stale(rows[:2], moved[:2]).any()
    after, _ = small_ncc(bank, rows[:2], [window, window])
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_allclose(after[1], expected[2], rtol=0, atol=1e-9)


class ReadCounter:
    """A stack that counts the reads of each box shape."""

    def __init__(self, values):
        self.values, self.shape = values, values.shape
        self.dtype, self.ndim = values.dtype, values.ndim
        self.reads = {}

    def __getitem__(self, index):
        box = self.values[index]
        self.reads[box.shape] = self.reads.get(box.shape, 0) + 1
        return box


def test_templates_are_read_again_only_when_their_key_changes():
    """CoarseSearch reads a template again when its frame, plane or pixel
    changes, never for the same key; the windows every time."""
    stack = ReadCounter(texture((3, 2, 40, 40)))
    search = CoarseSearch(stack, 4, (3, 3), (6, 6), np.float32, 0.5)
    rows, frames, planes = np.arange(4), np.zeros(4, int), np.zeros((4, 1))
    centres = np.array([[10.0, 10], [20.2, 15], [25, 30], [30, 12]])

    def reads():
        """(templates, windows) read by one match."""
        stack.reads.clear()
        at = planes.astype(int)
        found = search.match(rows, at, frames, centres, centres, frames)
        assert found.done.all()
        return stack.reads.get((7, 7), 0), stack.reads.get((13, 13), 0)

    assert reads() == (4, 4)
    assert reads() == (0, 4)
    frames[1], planes[2] = 2, 1
    centres[3] += [0.4, -0.3]  # the same pixel
    assert reads() == (2, 4)
    centres[3] += [0, 1]
    assert reads() == (1, 4)


def test_coarse_search_matches_as_match_points():
    """Whole-pixel matches of points of planes of a stack, between frames,
    as match_points gives them: positions, scores, second peaks, verdicts;
    rows whose windows leave the frame or hold NaN are not done."""
    rng = np.random.default_rng(3)
    radius, search_radius = (4, 5), (7, 7)
    base = np.stack([texture((44, 52), seed) for seed in (20, 21)])
    stack = np.stack(
        [np.roll(base, (2 * t, -t), axis=(1, 2)) for t in range(3)]
    )
    stack += 0.05 * rng.normal(size=stack.shape)
    stack[1, 0, 20, 25] = stack[2, 1, 12, 30] = np.nan
    n = 120
    plane = rng.integers(0, 2, n)
    source, target = rng.integers(0, 3, (2, n))
    centres = rng.uniform(0, [44, 52], (n, 2))
    truth = centres + np.outer(target - source, [2, -1])
    # Half near the match (peaks inside), half far off (border, low).
    spread = np.where(np.arange(n) % 2, 2.5, 10)[:, None]
    guesses = truth + spread * rng.uniform(-1, 1, (n, 2))

    coarse = CoarseSearch(
        stack, n, radius, search_radius, np.float32, min_score=0.5
    )
    found = coarse.match(
        np.arange(n), plane[:, None], source, centres, guesses, target
    )

    def window(frame, z, at, half):
        """The box of radius `half` around `at`, None past the border."""
        low = np.rint(at).astype(int) - half
        high = low + 2 * np.asarray(half) + 1
        if np.any(low < 0) or np.any(high > stack.shape[2:]):
            return None
        return stack[(frame, z, *map(slice, low, high))]

    readable = np.zeros(n, dtype=bool)
    for k in range(n):
        boxes = [
            window(source[k], plane[k], centres[k], radius),
            window(target[k], plane[k], guesses[k], search_radius),
        ]
        readable[k] = all(
            b is not None and np.isfinite(b).all() for b in boxes
        )
    np.testing.assert_array_equal(found.done, readable)
    assert 20 < found.done.sum() < n - 20

    for pair in np.unique(np.stack([source, target], 1), axis=0):
        rows = np.flatnonzero(
            (source == pair[0]) & (target == pair[1]) & found.done
        )
        expected = match_points(
            stack[pair[0]],
            stack[pair[1]],
            np.column_stack([plane[rows], centres[rows]]),
            image_points=np.column_stack([plane[rows], guesses[rows]]),
            template_radius=radius,
            search_radius=search_radius,
            subpixel=False,
            check_consistency=False,
            max_motion_gap=np.inf,
            max_neighbour_residual=np.inf,
        )
        np.testing.assert_array_equal(
            found.position[rows], expected.matched[:, 1:]
        )
        for name, values in [
            ("score", expected.score),
            ("second", expected.second_score),
        ]:
            np.testing.assert_allclose(
                getattr(found, name)[rows], values, rtol=0, atol=2e-4
            )
        verdicts = np.where(
            np.isin(expected.status, COARSE_VERDICTS),
            expected.status,
            Status.OK,
        )
        np.testing.assert_array_equal(found.status[rows], verdicts)
    for verdict in COARSE_VERDICTS:
        assert (found.status[found.done] == verdict).sum() >= 5


def drifting_stack(frames=12, shape=(64, 72)):
    """Frames of a texture drifting by a sub-pixel step, with noise."""
    rng = np.random.default_rng(4)
    base = texture((shape[0] + 20, shape[1] + 20), 30)
    stack = np.empty((frames, *shape))
    for t in range(frames):
        moved = ndimage.shift(base, (0.6 * t, -0.45 * t), order=3)
        stack[t] = moved[10:-10, 10:-10] + 0.02 * rng.normal(size=shape)
    return stack


WHOLE_PIXELS = Options(
    radius=(5, 5),
    search=(8, 8),
    reference="adaptive",
    subpixel=False,
    shape=ShapeFunction(2, 2),
    min_score=0.5,
    min_distinctiveness=0.05,
    refresh_score=0.9,
    patience=3,
    fft_precision="single",
    batch_size=8,
)


def test_tracking_on_whole_pixels_is_the_same_with_small_windows():
    """track_points(..., subpixel=False) finds the same vertices whether
    the points inside take the small-window search or all match_points;
    points near the border take both paths in one run."""
    stack = drifting_stack()
    inner = np.stack(np.meshgrid([20, 32, 44], [22, 36, 50]), -1)
    border = [[6.3, 30], [12, 7.6], [55, 40], [30, 64.2], [9, 62]]
    points = np.vstack([inner.reshape(-1, 2), border])
    points = np.column_stack([np.zeros(len(points)), points])
    points[::3, 0] = 5
    options = WHOLE_PIXELS
    small = Tracker(stack, points, options)
    done = []
    match = small.whole_pixels.search.match

    def recording(*args):
        found = match(*args)
        done.append(found.done)
        return found

    small.whole_pixels.search.match = recording
    small.run(None)
    general = Tracker(stack, points, options)
    general.whole_pixels.search = None
    general.run(None)
    done = np.concatenate(done)
    assert done.sum() > 100 and (~done).sum() > 10
    a, b = small.result, general.result
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.position, b.position)
    for name in ("score", "distinctiveness"):
        np.testing.assert_allclose(
            getattr(a, name), getattr(b, name), rtol=0, atol=2e-4
        )
    assert (a.status == Status.OK).mean() > 0.5


def test_small_window_search_only_where_it_fits():
    """A search radius below the template radius, or more points than the
    kept spectra may hold (BANK_BYTES): no small-window search, every
    point takes match_points."""
    stack = drifting_stack(frames=3)
    points = np.array([[0, 30.0, 30.0]])
    assert Tracker(stack, points, WHOLE_PIXELS).whole_pixels.search is not None
    narrow = dataclasses.replace(WHOLE_PIXELS, search=(8, 4))
    assert Tracker(stack, points, narrow).whole_pixels.search is None
    tracker = Tracker(stack, points, WHOLE_PIXELS)
    per_point = TemplateBank.size(1, (17, 17), np.float32)
    fits = BANK_BYTES // per_point
    assert tracker._small_window_search(fits) is not None
    assert tracker._small_window_search(fits + 1) is None


def brute_force_second_peak(surface, peak):
    """Index and value of the best 3x3 local maximum outside the main
    peak's box (the first in C order on ties); else of the best value
    outside; else (-1, ..), NaN."""
    reach = np.maximum(half_widths(surface[None], np.array([peak]))[0], 2)
    low, high = np.maximum(np.array(peak) - reach, 0), peak + reach + 1
    best, best_maximum = None, None
    for index in itertools.product(*map(range, surface.shape)):
        if np.all((low <= index) & (index < high)):
            continue
        near = tuple(slice(max(i - 1, 0), i + 2) for i in index)
        value = surface[index]
        if best is None or value > surface[best]:
            best = index
        if value == surface[near].max() and (
            best_maximum is None or value > surface[best_maximum]
        ):
            best_maximum = index
    found = best_maximum if best_maximum is not None else best
    if found is None:
        return (-1,) * surface.ndim, np.nan
    return found, surface[found]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_second_peaks_are_the_brute_force_ones(dtype):
    """60 surfaces of 1 to 3 axes with many ties: the same second peaks,
    index and value, as the brute force."""
    rng = np.random.default_rng(5)
    shapes = [(9,), (3,), (15,), (12, 7), (5, 5), (4, 11), (1, 9)]
    shapes += [(6, 5, 7), (3, 3, 8), (2, 9, 6)]
    found = 0
    for shape in shapes:
        # Eighths: exact in float32 too, and many ties.
        surfaces = rng.integers(0, rng.integers(2, 12), (6, *shape)) / 8
        surfaces[0] = 0.5  # all local maxima
        # A ramp: no local maximum outside the main peak's box.
        surfaces[1] = np.indices(shape).sum(axis=0) / 8
        # A broad peak: its flank outside the box is no local maximum.
        centre = np.reshape(np.array(shape) // 3, (-1,) + (1,) * len(shape))
        distance = np.abs(np.indices(shape) - centre).sum(axis=0)
        surfaces[2:4] += np.maximum(6 - distance, 0) / 4
        surfaces = surfaces.astype(dtype)
        flat = np.argmax(surfaces.reshape(6, -1), axis=1)
        peaks = np.stack(np.unravel_index(flat, shape), axis=-1)
        index, value = second_peaks(surfaces, peaks)
        for k in range(6):
            expected = brute_force_second_peak(surfaces[k], tuple(peaks[k]))
            assert tuple(index[k]) == expected[0]
            np.testing.assert_equal(value[k], expected[1])
            found += expected[0][0] >= 0
    assert found > 40
