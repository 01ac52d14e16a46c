"""Is an ``ok`` row right, and is its uncertainty honest? (issue 26)

Accuracy, not time. Every set has an exact answer for every point
(tests/ground_truth.py builds them; the truth never comes from the
engine). match_points runs once per set at its default thresholds, with
the radii a user would pick for that set (template radius t, search
radius s, in px, below), on a grid of points away from the borders.

Sets (radii, points):

- speckle 3 deg: analytic speckle (4 px), rotated 3 degrees about the
  image centre and rendered exactly, 1 % noise, 256 x 256; t 15, s 30
  (rotation moves the grid up to 6.5 px), grid step 12, margin 40.
- particles <flow>: PIV particles (0.05 per px, e^-2 diameter 2.5 px),
  2 % noise, 256 x 256, for a uniform shift (2.3, -1.7), a solid rotation
  (0.02 rad), a shear (0.03 px/px) and a Lamb-Oseen vortex (gradient 0.1
  at its centre, core radius 30 px); t 16 (33 px windows, as in PIV),
  s 24, grid step 12, margin 32.
- NaN stripe: gravel shifted by (2.3, -1.6), 1 % noise, 6 NaN columns
  through the middle of both images; t 10 (21 px templates), s 18, points
  every 8 px in the 36 columns around the stripe.
- striped no-data: the same gravel, 4 rows in every 11 NaN, other rows
  in each image; t 15, s 25, grid step 20.
- dead pixels: the same gravel with 40 % of the pixels NaN in each image
  (independently): two windows then share ~36 % of their pixels, under
  match_points' min_valid (half), so only small templates, whose overlap
  strays above half at a few positions, give surfaces at all; t 4, s 12,
  grid step 12. And with 30 % NaN (overlap ~49 %, around min_valid):
  t 10, s 18, grid step 12.
- brick: scikit-image's brick shifted by (0.3, 0.4) (bench_verdicts' set),
  512 x 512, no noise; t 15, s 25, grid step 24, margin 40.
- motorcycle: the rectified stereo pair with its disparity; t 15,
  s (18, 95) (the disparity reaches ~80 px), textured points with a
  finite disparity every 20 px (as bench_verdicts lays them).
- deformed sample: ``deformed_pair()`` (up to ~4 px, smooth); t 15,
  s 21, grid step 12, margin 32.

Per set it prints the rows, the share ok, among the ok rows the share
more than 0.1 / 0.5 / 1 px from the truth, and the calibration: the share
of ok rows whose error is at most k * uncertainty + 0.02 px for k = 1, 2,
3, 5 (target: >= 90 % at k = 3), then the statuses of each set's rows.
With --plot PATH it draws that share against k from 0 to 6, one line per
set.

Run: python benchmarks/bench_calibration.py [--plot calibration.png]
"""

import argparse
import time

import numpy as np
from scipy import ndimage

import _timing
import ground_truth as gt
from bench_verdicts import BRICK_SHIFT, STD_MIN
from napari_normxcorr import Status, match_points

KS = (1, 2, 3, 5)
FLOOR = 0.02  # px added to k * uncertainty
OFF_BY = (0.1, 0.5, 1.0)  # px
TARGET = 0.9  # share within 3 sigma + FLOOR
LABEL = 31  # width of the set's name


def motorcycle_points(case, radius, search, spacing=20):
    """Textured points with a known disparity, as bench_verdicts lays
    them (local std above STD_MIN)."""
    left = case.template_image
    size = 2 * radius + 1
    mean = ndimage.uniform_filter(left, size)
    square = ndimage.uniform_filter(left**2, size)
    spread = np.sqrt(np.maximum(square - mean**2, 0))
    rows = np.arange(search[0] + 10, left.shape[0] - search[0] - 10, spacing)
    cols = np.arange(100, left.shape[1] - radius - 10, spacing)
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1)
    grid = grid.reshape(-1, 2)
    known = np.isfinite(case.true_position(grid)).all(axis=1)
    textured = spread[grid[:, 0], grid[:, 1]] > STD_MIN
    return grid[known & textured].astype(float)


def sets():
    """(label, case, points, template radius, search radius) per set."""
    speckle = gt.speckle_pair()
    yield speckle.name, speckle, gt.grid_points(speckle, 12, 40), 15, 30
    for flow in gt.FLOWS:
        case = gt.particle_pair(flow)
        yield case.name, case, gt.grid_points(case, 12, 32), 16, 24
    stripe = gt.nan_stripe()
    first = int(stripe.info["columns"][0])
    box = ((0, 255), (first - 15, first + 20))
    yield stripe.name, stripe, gt.grid_points(stripe, 8, 24, box), 10, 18
    striped = gt.striped_nodata()
    yield striped.name, striped, gt.grid_points(striped, 20, 32), 15, 25
    dead = gt.dead_pixels(0.4)
    yield dead.name, dead, gt.grid_points(dead, 12, 24), 4, 12
    dead = gt.dead_pixels(0.3)
    yield dead.name, dead, gt.grid_points(dead, 12, 24), 10, 18
    brick = gt.shifted_texture("brick", BRICK_SHIFT, shape=None, noise=0)
    yield "brick (0.3, 0.4)", brick, gt.grid_points(brick, 24, 40), 15, 25
    stereo = gt.stereo_motorcycle()
    search = (18, 95)
    points = motorcycle_points(stereo, 15, search)
    yield stereo.name, stereo, points, 15, search
    deformed = gt.deformed_sample()
    yield deformed.name, deformed, gt.grid_points(deformed, 12, 32), 15, 21


def within(error, uncertainty, k):
    """Share of rows with error <= k * uncertainty + FLOOR (NaN: not)."""
    if len(error) == 0:
        return np.nan
    return float(np.mean(error <= k * uncertainty + FLOOR))


def main():
    print(_timing.machine_line())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", metavar="PATH", help="write the curves")
    parser.add_argument(
        "--shape-order",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="match_points' shape_order (default 1, its default)",
    )
    arguments = parser.parse_args()
    print(f"shape_order={arguments.shape_order}")
    print(
        f"calibration: share of ok rows with error <= k * uncertainty + "
        f"{FLOOR:g} px (target >= {TARGET:.0%} at k = 3)"
    )
    header = (
        f"{'set':<{LABEL}} {'t':>3} {'s':>7} {'rows':>5} {'ok':>6} "
        + " ".join(f"{f'>{d:g}px':>6}" for d in OFF_BY)
        + f" {'med err':>7} {'med unc':>7} "
        + " ".join(f"{f'k={k}':>6}" for k in KS)
        + f" {'sec':>5}"
    )
    print(header)
    print("-" * len(header))
    curves, verdicts = {}, {}
    start = time.perf_counter()
    for label, case, points, radius, search in sets():
        begin = time.perf_counter()
        result = match_points(
            case.template_image,
            case.image,
            points,
            template_radius=radius,
            search_radius=search,
            shape_order=arguments.shape_order,
        )
        seconds = time.perf_counter() - begin
        error = gt.errors(result, case)
        ok = result.status == Status.OK
        names, counts = np.unique(result.status.astype(str), return_counts=1)
        verdicts[label] = ", ".join(
            f"{name} {count}"
            for count, name in sorted(zip(counts, names), reverse=True)
        )
        error, uncertainty = error[ok], result.uncertainty[ok]
        off = [np.mean(error > d) if ok.any() else np.nan for d in OFF_BY]
        median_error = np.median(error) if ok.any() else np.nan
        median_unc = np.median(uncertainty) if ok.any() else np.nan
        ks = np.linspace(0, 6, 61)
        curves[label] = (ks, [within(error, uncertainty, k) for k in ks])
        s = search if np.isscalar(search) else ",".join(map(str, search))
        print(
            f"{label:<{LABEL}} {radius:3d} {s:>7} {len(points):5d} "
            f"{ok.mean():6.1%} "
            + " ".join(f"{v:6.1%}" for v in off)
            + f" {median_error:7.3f} {median_unc:7.3f} "
            + " ".join(f"{within(error, uncertainty, k):6.1%}" for k in KS)
            + f" {seconds:5.1f}"
        )
    print("\nstatuses")
    for label, text in verdicts.items():
        print(f"  {label:<{LABEL}} {text}")
    print(f"\n{time.perf_counter() - start:.0f} s")
    if arguments.plot:
        plot(curves, arguments.plot)
        print(f"curves: {arguments.plot}")


def plot(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9.5, 5))
    colours = plt.get_cmap("tab20")
    for i, (label, (ks, shares)) in enumerate(curves.items()):
        # Twenty distinct colours: the dark ones first, then the light.
        colour = colours((2 * i) % 20 + (2 * i) // 20)
        style = "-" if i < 10 else "--"
        axis.plot(ks, shares, style, color=colour, label=label)
    axis.axhline(TARGET, color="k", ls="--", lw=0.8)
    axis.axvline(3, color="k", ls=":", lw=0.8)
    axis.set_xlabel("k")
    axis.set_ylabel(f"ok rows with error <= k * uncertainty + {FLOOR:g} px")
    axis.set_xlim(0, 6)
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    axis.set_title("Calibration of match_points' uncertainty (ok rows)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
