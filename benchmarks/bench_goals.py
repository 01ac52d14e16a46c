"""The speed goals, each against its reference timed right beside it.

One line per goal: what is measured, the median of the paired ratios
(each run of ours timed right before a run of its reference, so that a
machine whose speed drifts within minutes compares like with like), each
pair's ratio, and the goal. Ratios are ours / the reference (< 1: ours is
faster), except 'full' mode, which is the seed's time / ours.

- `match_points` on 1000 points of a float64 3000² texture, template
  radius 50 in search radius 200, against a loop of OpenCV
  `matchTemplate` (TM_CCOEFF_NORMED, float32) + `minMaxLoc` over the same
  windows: with its defaults (every verdict), and with whole pixels and
  no back-match (the other verdicts on).
- `normalized_cross_correlation` of a 2048² image with a 101² template in
  'valid' mode, single and double precision, against OpenCV
  `matchTemplate` on float32 copies; and in 'full' mode against the
  seed's method (three `fftconvolve` calls).
- `match_points` and `track_points` on a dask array of one chunk against
  the same data in memory.

Run: python benchmarks/bench_goals.py [--repeats N] [--quick]
(--quick: 200 points instead of 1000, to try it in a minute).
"""

import functools

import dask.array as da
import numpy as np
from scipy import ndimage

import _timing
from _timing import optional_cv2, paired_ratios
from bench_match_points import opencv_loop
from bench_track import drifting_stack
from napari_normxcorr import (
    match_points,
    normalized_cross_correlation,
    track_points,
)
from reference import seed_ncc

RADII = dict(template_radius=50, search_radius=200)


def main():
    args = _timing.repeats_and_quick(__doc__)
    print(_timing.machine_line())
    cv2 = optional_cv2()
    rows = []
    if cv2 is None:
        print("OpenCV is not installed: its rows are skipped")
    else:
        rows += match_points_rows(cv2, 200 if args.quick else 1000)
        rows += whole_image_rows(cv2)
    rows += full_mode_rows()
    rows += dask_rows()
    print(
        f"{'what':<62} {'median':>7} {'goal':>7}  met  pairs "
        f"(ours / reference unless said)"
    )
    for label, function, reference, goal, inverted in rows:
        ours, theirs, ratios = paired_ratios(
            {label: function}, reference, args.repeats
        )[label]
        if inverted:
            ratios = [1 / r for r in ratios]
        median = float(np.median(ratios))
        met = median >= goal if inverted else median <= goal
        sign = ">=" if inverted else "<="
        print(
            f"{label:<62} {median:6.2f}x {sign}{goal:<5} "
            f"{'yes' if met else 'NO ':>4}  "
            + " ".join(f"{r:.2f}" for r in ratios)
            + f"   (ours {ours * 1e3:.0f} ms, reference {theirs * 1e3:.0f} ms)"
        )


def match_points_rows(cv2, count):
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(3000, 3000)), 1.5)
    base = base.astype(np.float32)
    moved = np.roll(base, (7, -12), axis=(0, 1))
    points = rng.uniform(200, 3000 - 201, size=(count, 2))
    base64, moved64 = base.astype(np.float64), moved.astype(np.float64)
    loop = functools.partial(opencv_loop, cv2, base, moved, points)
    # Warm up (imports, FFT plans, the threads' scratch arrays).
    match_points(base64, moved64, points[:8], **RADII)
    loop()
    run = functools.partial(match_points, base64, moved64, points, **RADII)
    return [
        (
            f"match_points defaults, {count} points vs OpenCV loop",
            run,
            loop,
            1.6,
            False,
        ),
        (
            "  whole pixels, no back-match (other verdicts on)",
            functools.partial(run, subpixel=False, check_consistency=False),
            loop,
            1.0,
            False,
        ),
    ]


def whole_image_rows(cv2):
    rng = np.random.default_rng(1)
    image = rng.random((2048, 2048))
    template = image[600:701, 900:1001].copy()
    image32, template32 = image.astype(np.float32), template.astype(np.float32)

    def opencv():
        cv2.matchTemplate(image32, template32, cv2.TM_CCOEFF_NORMED)

    ncc = functools.partial(normalized_cross_correlation, template, image)
    ncc("valid")
    return [
        (
            "whole image 2048² x 101² 'valid', single vs OpenCV",
            functools.partial(ncc, "valid", fft_precision="single"),
            opencv,
            1.0,
            False,
        ),
        (
            "  the same in double precision",
            functools.partial(ncc, "valid"),
            opencv,
            1.25,
            False,
        ),
    ]


def full_mode_rows():
    rng = np.random.default_rng(2)
    image = rng.random((2048, 2048))
    template = image[:101, :101].copy()
    return [
        (
            "'full' mode 2048² x 101²: seed / ours (three fftconvolve)",
            functools.partial(
                normalized_cross_correlation, template, image, "full"
            ),
            functools.partial(seed_ncc, template, image, "full"),
            5.0,
            True,
        )
    ]


def dask_rows():
    rng = np.random.default_rng(3)
    image = ndimage.gaussian_filter(rng.normal(size=(1000, 1000)), 1.5)
    moved = np.roll(image, (3, -4), axis=(0, 1))
    points = rng.uniform(60, 940, size=(300, 2))
    lazy = [da.from_array(a, chunks=a.shape) for a in (image, moved)]
    radii = dict(template_radius=15, search_radius=40)
    stack = drifting_stack(512, 20)
    # Points in frame 0: (t, row, col).
    track_at = np.column_stack(
        [np.zeros(50), rng.uniform(60, 450, size=(50, 2))]
    )
    lazy_stack = da.from_array(stack, chunks=stack.shape)
    return [
        (
            "match_points on a dask array of one chunk vs numpy",
            functools.partial(match_points, *lazy, points, **radii),
            functools.partial(match_points, image, moved, points, **radii),
            1.5,
            False,
        ),
        (
            "track_points on a dask array of one chunk vs numpy",
            functools.partial(track_points, lazy_stack, track_at),
            functools.partial(track_points, stack, track_at),
            1.5,
            False,
        ),
    ]


if __name__ == "__main__":
    main()
