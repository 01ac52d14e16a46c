"""Speed of match_points against loops over reference matchers.

A 3000 x 3000 textured image, template radius 50 in search radius 200, for
1, 100 and 1000 points of interest. Prints the time per point of ours
(like for like: whole-pixel matches, no consistency check, no motion-gap
verdict; and with every feature on) and the ratio (reference time / ours,
> 1: ours is faster) to loops over (a) the seed's method
(find_template_offset_centered: three fftconvolve calls per point), (b)
OpenCV matchTemplate + minMaxLoc on the same windows (float32; when
opencv-python-headless is installed) and (c) scikit-image match_template.
Loops are timed on up to 50 points (their cost per point is constant).
Also prints our peak memory at 1000 points.

Then the cost of the verdicts at 1000 points: each configuration timed
right beside the OpenCV loop over all 1000 windows (float64 input, as
users' images often are), REPEATS pairs; the ratio is ours / the loop
(< 1: ours is faster). The configurations: plain (whole pixels, the
second peak and the covariance: no consistency check, no neighbours, no
motion gap), every feature (+ sub-pixel, the back-match of the
consistency check, the neighbour test), match_points' defaults (+ the
motion gap) and, for the price of the default affine warp, the defaults
refining the shift alone (shape_order=0).
Run: python benchmarks/bench_match_points.py
"""

import functools
import time
import tracemalloc

import numpy as np
from scipy import ndimage
from skimage.feature import match_template

import _timing
from _timing import optional_cv2, paired_ratios
from napari_normxcorr import match_points
from reference import seed_ncc

T_RADIUS, S_RADIUS = 50, 200
REPEATS = 5
RADII = dict(template_radius=T_RADIUS, search_radius=S_RADIUS)
CONFIGURATIONS = {
    "plain": dict(
        RADII,
        subpixel=False,
        check_consistency=False,
        max_neighbour_residual=np.inf,
        max_motion_gap=np.inf,
    ),
    "every feature": dict(RADII, max_motion_gap=np.inf),
    # The price of the default affine warp: the defaults with the shift
    # alone refined.
    "defaults, shift only": dict(RADII, shape_order=0),
    "defaults": RADII,
}


def seed_loop(template_image, image, points):
    """The seed's per-point method: crop, three fftconvolves, argmax."""
    for r, c in np.rint(points).astype(int):
        template = template_image[
            r - T_RADIUS : r + T_RADIUS, c - T_RADIUS : c + T_RADIUS
        ]
        window = image[
            r - S_RADIUS : r + S_RADIUS, c - S_RADIUS : c + S_RADIUS
        ]
        xc = seed_ncc(template, window, "full")
        np.unravel_index(np.argmax(xc), xc.shape)


def opencv_loop(cv2, template_image, image, points):
    for r, c in np.rint(points).astype(int):
        template = template_image[
            r - T_RADIUS : r + T_RADIUS + 1, c - T_RADIUS : c + T_RADIUS + 1
        ]
        window = image[
            r - S_RADIUS : r + S_RADIUS + 1, c - S_RADIUS : c + S_RADIUS + 1
        ]
        xc = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
        cv2.minMaxLoc(xc)


def skimage_loop(template_image, image, points):
    for r, c in np.rint(points).astype(int):
        template = template_image[
            r - T_RADIUS : r + T_RADIUS + 1, c - T_RADIUS : c + T_RADIUS + 1
        ]
        window = image[
            r - S_RADIUS : r + S_RADIUS + 1, c - S_RADIUS : c + S_RADIUS + 1
        ]
        xc = match_template(window, template)
        np.unravel_index(np.argmax(xc), xc.shape)


def per_point(function, points, limit=None):
    subset = points if limit is None else points[:limit]
    start = time.perf_counter()
    function(subset)
    return (time.perf_counter() - start) / len(subset)


def main():
    print(_timing.machine_line())
    cv2 = optional_cv2()
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(3000, 3000)), 1.5)
    base = base.astype(np.float32)
    moved = np.roll(base, (7, -12), axis=(0, 1))
    all_points = rng.uniform(S_RADIUS, 3000 - S_RADIUS - 1, size=(1000, 2))
    base64, moved64 = base.astype(np.float64), moved.astype(np.float64)
    print(
        f"{'POIs':>5} {'ours':>8} {'all on':>8} {'x seed':>7} "
        f"{'x opencv':>8} {'x skimage':>9}"
    )
    plain = dict(
        template_radius=T_RADIUS,
        search_radius=S_RADIUS,
        subpixel=False,
        check_consistency=False,
        # A verdict's own correlations, which the references do not make.
        max_motion_gap=np.inf,
    )
    # Warm up every method once (imports, FFT plans, first allocations).
    warm = all_points[-2:]
    match_points(base, moved, warm, **dict(plain, subpixel=True))
    seed_loop(base64, moved64, warm)
    skimage_loop(base, moved, warm)
    if cv2 is not None:
        opencv_loop(cv2, base, moved, warm)
    for n in (1, 100, 1000):
        points = all_points[:n]
        ours = per_point(
            lambda p: match_points(base, moved, p, **plain), points
        )
        full = per_point(
            lambda p: match_points(
                base,
                moved,
                p,
                template_radius=T_RADIUS,
                search_radius=S_RADIUS,
            ),
            points,
        )
        seed = per_point(lambda p: seed_loop(base64, moved64, p), points, 20)
        skimage = per_point(lambda p: skimage_loop(base, moved, p), points, 20)
        opencv = float("nan")
        if cv2 is not None:
            opencv = per_point(
                lambda p: opencv_loop(cv2, base, moved, p), points, 50
            )
        print(
            f"{n:5d} {ours * 1e3:6.2f}ms {full * 1e3:6.2f}ms "
            f"{seed / ours:7.1f} {opencv / ours:8.2f} {skimage / ours:9.1f}"
        )
    tracemalloc.start()
    match_points(
        base,
        moved,
        all_points,
        template_radius=T_RADIUS,
        search_radius=S_RADIUS,
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"peak memory of match_points, 1000 POIs, all features: "
        f"{peak / 2**20:.0f} MiB"
    )
    print(
        "ratios: reference time per point / ours (like for like: whole "
        "pixels, no consistency check, no motion gap); 'all on' adds "
        "sub-pixel refinement, the consistency check and the motion gap."
    )
    if cv2 is not None:
        verdict_costs(cv2, base, moved, all_points)


def verdict_costs(cv2, base, moved, points):
    """Each configuration's time per point and its paired ratios to the
    OpenCV loop over the same windows."""
    base64, moved64 = base.astype(np.float64), moved.astype(np.float64)
    runs = {
        name: functools.partial(match_points, base64, moved64, points, **kw)
        for name, kw in CONFIGURATIONS.items()
    }
    timed = paired_ratios(
        runs, functools.partial(opencv_loop, cv2, base, moved, points), REPEATS
    )
    print(
        f"\nverdict costs, {len(points)} POIs, float64 input; ours / OpenCV "
        f"loop over the same windows ({REPEATS} pairs)"
    )
    for name, (ours, theirs, ratios) in timed.items():
        each = " ".join(f"{r:.2f}" for r in ratios)
        print(
            f"  {name:<20} {ours / len(points) * 1e3:6.2f} ms per point "
            f"(OpenCV loop {theirs / len(points) * 1e3:.2f})   median "
            f"{np.median(ratios):5.2f}x of {each}"
        )


if __name__ == "__main__":
    main()
