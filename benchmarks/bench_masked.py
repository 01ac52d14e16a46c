"""Cost of masks in match_points, against the unmasked run.

A 2000 x 2000 textured image, 500 points of interest, template radius 15
in search radius 40, every feature on (sub-pixel, consistency check).
Prints the median time of each run over a few repeats and its ratio to
the unmasked run of the same script (> 1: the masks cost that much):
(a) masks given but all False (must cost about nothing), (b) an image
mask of square holes covering a few % of the pixels and touching about
30 % of the windows (only those take the masked correlation), (c) the
same holes as NaN in the target instead of a mask.
Run: python benchmarks/bench_masked.py
"""

import numpy as np
from scipy import ndimage

import _timing
from _timing import median_time
from napari_normxcorr import match_points

SIZE, POINTS, T_RADIUS, S_RADIUS = 2000, 500, 15, 40
HOLES, HOLE = 116, 30  # ~30 % of the search windows touch a hole


def holes(rng):
    """A mask of HOLES squares of side HOLE at random places."""
    mask = np.zeros((SIZE, SIZE), bool)
    for r, c in rng.integers(0, SIZE - HOLE, size=(HOLES, 2)):
        mask[r : r + HOLE, c : c + HOLE] = True
    return mask


def touched(mask, points, radius):
    """Share of the windows of `radius` around `points` that `mask` hits."""
    hits = [
        mask[
            max(r - radius, 0) : r + radius + 1,
            max(c - radius, 0) : c + radius + 1,
        ].any()
        for r, c in np.rint(points).astype(int)
    ]
    return float(np.mean(hits))


def main():
    print(_timing.machine_line())
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(SIZE, SIZE)), 1.5)
    moved = np.roll(base, (3, -5), axis=(0, 1))
    points = rng.uniform(S_RADIUS, SIZE - S_RADIUS - 1, size=(POINTS, 2))
    mask = holes(rng)
    with_nan = moved.copy()
    with_nan[mask] = np.nan
    none = np.zeros(mask.shape, bool)
    options = dict(template_radius=T_RADIUS, search_radius=S_RADIUS)
    runs = {
        "unmasked": lambda: match_points(base, moved, points, **options),
        "all-False masks": lambda: match_points(
            base, moved, points, template_mask=none, image_mask=none, **options
        ),
        "holes as mask": lambda: match_points(
            base, moved, points, image_mask=mask, **options
        ),
        "holes as NaN": lambda: match_points(
            base, with_nan, points, **options
        ),
    }
    runs["unmasked"]()  # warm up: imports, FFT plans, first allocations
    times = {name: median_time(run, repeats=5) for name, run in runs.items()}
    print(
        f"{POINTS} POIs, template r{T_RADIUS} in search r{S_RADIUS}, "
        f"{SIZE}x{SIZE}; holes: {mask.mean():.1%} of the pixels, touching "
        f"{touched(mask, points, S_RADIUS):.0%} of the search windows"
    )
    print(f"{'run':>16} {'median':>9} {'x unmasked':>10}")
    for name, seconds in times.items():
        ratio = seconds / times["unmasked"]
        print(f"{name:>16} {seconds * 1e3:7.1f}ms {ratio:10.2f}")
    print("ratio: time of the run / time of the unmasked run (same script).")


if __name__ == "__main__":
    main()
