"""How far match_points' verdicts can be trusted: is an ``ok`` row right?

Accuracy, not time. Three sets with a known answer for every point:

(a) the Middlebury motorcycle pair (``skimage.data.stereo_motorcycle``,
    rectified: left (r, c) is right (r, c - disparity)), on a grid of
    points kept where the disparity at the point is finite (not occluded)
    and the template window has texture (local std above STD_MIN); for
    several template and search radii; also split into windows that see
    one depth (true disparities within DEPTH_EDGE px) and windows across
    a depth edge, where no one shift is right for the whole window;
(b) scikit-image's ``brick`` shifted by BRICK_SHIFT (cubic spline), a
    27 x 27 grid; truth = point + shift;
(c) ``deformed_pair()`` of the sample data; truth = its 'true positions'.

A row is wrong when its match is more than WRONG px from the truth (or
has no match). For each set and setting it prints the share of rows
marked ok, the share wrong among the ok and among the flagged rows.

Each setting is matched once with the threshold tests off; the verdict at
thresholds (s, r, m, u, c, n) is then rebuilt from the result columns by the
library's own verdict functions (judge_rows, then judge_neighbours), so
the sweep needs no new matching. The rebuilt verdict at the defaults is
checked against a real run on the deformed pair. The precision/coverage
table pools each set's settings; the curves (wrong among kept against
kept share) go to verdicts.png.
Run: python benchmarks/bench_verdicts.py
"""

import inspect
import itertools
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

import _timing
from napari_normxcorr import Status, match_points
from napari_normxcorr.io._samples import deformed_pair, stereo_images
from napari_normxcorr.matching._verdicts import (
    Thresholds,
    judge_neighbours,
    judge_rows,
)

WRONG = 2.0  # px from the truth
# A window whose true disparities span more than this (px) crosses a
# depth edge.
DEPTH_EDGE = 2.0
STD_MIN = 0.04  # local std of a motorcycle template (grey in [0, 1])
BRICK_SHIFT = (0.3, 0.4)
NAMES = {
    "s": "min_score",
    "r": "min_peak_ratio",
    "m": "max_motion_gap",
    "u": "max_uncertainty",
    "c": "max_consistency_error",
    "n": "max_neighbour_residual",
}
# match_points' own defaults.
DEFAULTS = {
    key: inspect.signature(match_points).parameters[name].default
    for key, name in NAMES.items()
}
OFF = dict(
    min_score=-np.inf,
    min_peak_ratio=-np.inf,
    # Finite: match_points computes the motion gap only when it is judged.
    max_motion_gap=np.finfo(float).max,
    max_uncertainty=np.inf,
    max_consistency_error=np.inf,
    max_neighbour_residual=np.inf,
)
GRID = {
    "s": (0.5, 0.7, 0.8, 0.9),
    "r": (1.0, 1.5, 2.0, 3.0),
    "m": (0.03, 0.05, 0.1, 0.2, np.inf),
    "u": (0.1, 0.2, 0.3, 0.5, np.inf),
    "c": (0.5, 1.0, 2.0, np.inf),
    "n": (2.0, 2.5, 3.0, np.inf),
}
SWEEPS = {
    "s": np.linspace(0, 1, 21),
    "r": np.geomspace(1, 10, 21),
    "m": np.geomspace(0.01, 1, 21),
    "u": np.geomspace(0.03, 3, 21),
    "c": np.geomspace(0.1, 20, 21),
    "n": np.geomspace(0.5, 20, 21),
}
OUT = Path(__file__).resolve().parent.parent / "docs" / "verdicts.png"


class Run:
    """One set and setting: the result the verdicts are rebuilt from."""

    def __init__(self, label, result, truth, ndim=2):
        self.label = label
        error = np.linalg.norm(result.matched - truth, axis=1)
        self.wrong = ~(error <= WRONG)
        self.result, self.ndim = result, ndim
        self.columns = {
            "score": result.score,
            "distinctiveness": result.distinctiveness,
            "peak_ratio": result.peak_ratio,
            "uncertainty": result.uncertainty,
            "motion_gap": result.motion_gap,
            "covariance": result.covariance,
            "consistency": result.consistency,
            # Border peaks are flagged with the tests off too.
            "on_border": np.zeros(len(result), dtype=bool),
        }

    def kept(self, s, r, m, u, c, n):
        limits = Thresholds(s, 0.0, r, m, u, c, n)
        status = judge_rows(self.result.status, self.columns, limits)
        judged = self.result.take(np.arange(len(self.result)))
        judged.status = status
        judge_neighbours(judged, n, self.ndim)
        return judged.status == Status.OK


def motorcycle_runs():
    left, right, disparity = stereo_images()
    runs = []
    for radius in (7, 10, 15):
        search = (radius + 3, radius + 80)
        mean = ndimage.uniform_filter(left, 2 * radius + 1)
        square = ndimage.uniform_filter(left**2, 2 * radius + 1)
        spread = np.sqrt(np.maximum(square - mean**2, 0))
        rows = np.arange(search[0] + 10, left.shape[0] - search[0] - 10, 20)
        cols = np.arange(100, left.shape[1] - radius - 10, 20)
        grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1)
        grid = grid.reshape(-1, 2)
        d = disparity[grid[:, 0], grid[:, 1]]
        keep = np.isfinite(d) & (spread[grid[:, 0], grid[:, 1]] > STD_MIN)
        points, d = grid[keep].astype(float), d[keep]
        truth = np.c_[points[:, 0], points[:, 1] - d]
        result = match_points(
            left,
            right,
            points,
            template_radius=radius,
            search_radius=search,
            **OFF,
        )
        run = Run(f"motorcycle t{radius} s{search}", result, truth)
        # Windows that see one depth, and those across a depth edge (no
        # single disparity is right for the whole window there).
        one = (
            depth_range(disparity, 2 * radius + 1)[
                grid[keep][:, 0], grid[keep][:, 1]
            ]
            <= DEPTH_EDGE
        )
        run.subsets = {"one depth": one, "depth edge": ~one}
        runs.append(run)
    return runs


def depth_range(disparity, size):
    """Spread of the finite disparities in each size x size window."""
    finite = np.isfinite(disparity)
    high = ndimage.maximum_filter(np.where(finite, disparity, -np.inf), size)
    low = ndimage.minimum_filter(np.where(finite, disparity, np.inf), size)
    return high - low


def brick_runs():
    from skimage import data

    before = data.brick().astype(float) / 255
    after = ndimage.shift(before, BRICK_SHIFT, order=3, mode="reflect")
    axis = np.linspace(40, before.shape[0] - 41, 27)
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
    points = points.reshape(-1, 2)
    truth = points + BRICK_SHIFT
    runs = []
    for radius in (7, 15):
        search = radius + 10
        result = match_points(
            before,
            after,
            points,
            template_radius=radius,
            search_radius=search,
            **OFF,
        )
        runs.append(Run(f"brick t{radius} s{search}", result, truth))
    return runs


def deformed_runs():
    layers = {kwargs["name"]: data for data, kwargs, _ in deformed_pair()}
    before, after = layers["before"], layers["after (deformed)"]
    points, truth = layers["grid points"], layers["true positions"]
    runs = []
    for radius in (10, 15):
        search = radius + 6
        radii = dict(template_radius=radius, search_radius=search)
        result = match_points(before, after, points, **radii, **OFF)
        run = Run(f"deformed t{radius} s{search}", result, truth)
        # The rebuilt verdict at the defaults is match_points' own.
        real = match_points(before, after, points, **radii)
        assert np.array_equal(
            run.kept(**DEFAULTS), real.status == Status.OK
        ), "rebuilt verdicts differ from match_points'"
        runs.append(run)
    return runs


def shares(kept, wrong):
    """(kept share, wrong among kept, wrong among flagged)."""
    n_kept, n_flagged = kept.sum(), (~kept).sum()
    return (
        kept.mean(),
        wrong[kept].sum() / n_kept if n_kept else np.nan,
        wrong[~kept].sum() / n_flagged if n_flagged else np.nan,
    )


def pooled(runs, **limits):
    kept = np.concatenate([run.kept(**limits) for run in runs])
    wrong = np.concatenate([run.wrong for run in runs])
    return shares(kept, wrong)


def front(table):
    """Rows no other row beats on both kept share and wrong among kept."""
    best, rows = np.inf, []
    for row in sorted(table, key=lambda row: (-row[1][0], row[1][1])):
        if row[1][1] < best:
            best = row[1][1]
            rows.append(row)
    return rows


def main():
    print(_timing.machine_line())
    start = time.perf_counter()
    sets = {
        "motorcycle": motorcycle_runs(),
        "brick": brick_runs(),
        "deformed": deformed_runs(),
    }
    print(
        f"wrong: > {WRONG:g} px from the truth; verdicts at the defaults ("
        + ", ".join(f"{NAMES[k]} {v:g}" for k, v in DEFAULTS.items())
        + ")"
    )
    print(
        f"{'set':<28} {'points':>6} {'ok':>6} {'wrong|ok':>9} "
        f"{'wrong|flagged':>13} {'wrong':>6}"
    )
    for name, runs in sets.items():
        kept_share, bad_kept, bad_flagged = pooled(runs, **DEFAULTS)
        count = sum(len(run.wrong) for run in runs)
        wrong = np.concatenate([run.wrong for run in runs]).mean()
        print(
            f"{name + ', all settings':<28} {count:6d} {kept_share:6.1%} "
            f"{bad_kept:9.1%} {bad_flagged:13.1%} {wrong:6.1%}"
        )
        for run in runs:
            kept_share, bad_kept, bad_flagged = shares(
                run.kept(**DEFAULTS), run.wrong
            )
            print(
                f"{run.label:<28} {len(run.wrong):6d} {kept_share:6.1%} "
                f"{bad_kept:9.1%} {bad_flagged:13.1%} {run.wrong.mean():6.1%}"
            )
            kept = run.kept(**DEFAULTS)
            for name, subset in getattr(run, "subsets", {}).items():
                kept_share, bad_kept, bad_flagged = shares(
                    kept[subset], run.wrong[subset]
                )
                print(
                    f"  {name:<26} {subset.sum():6d} {kept_share:6.1%} "
                    f"{bad_kept:9.1%} {bad_flagged:13.1%} "
                    f"{run.wrong[subset].mean():6.1%}"
                )
    grid = [
        dict(zip(GRID, values)) for values in itertools.product(*GRID.values())
    ]
    tables = {
        name: [(limits, pooled(runs, **limits)) for limits in grid]
        for name, runs in sets.items()
    }
    for name, table in tables.items():
        print(
            f"\n{name}: precision/coverage, all settings pooled; the "
            f"thresholds that no other beats on both (kept share, wrong "
            f"among kept), from {len(grid)} combinations"
        )
        print(
            " ".join(f"{k:>5}" for k in GRID)
            + f" {'kept':>6} {'wrong|kept':>10} {'wrong|flagged':>13}"
        )
        rows = front(table)
        picks = np.unique(np.linspace(0, len(rows) - 1, 12).astype(int))
        for limits, (kept_share, bad_kept, bad_flagged) in (
            rows[i] for i in picks
        ):
            print(
                " ".join(f"{v:5.2f}" for v in limits.values())
                + f" {kept_share:6.1%} {bad_kept:10.1%} {bad_flagged:13.1%}"
            )
    plot(sets, tables)
    print(f"\ncurves: {OUT.name}; {time.perf_counter() - start:.0f} s")


def plot(sets, tables):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, len(sets), figsize=(5 * len(sets), 4.2), squeeze=False
    )
    for axis, (name, runs) in zip(axes[0], sets.items(), strict=True):
        for key, values in SWEEPS.items():
            points = np.array(
                [
                    pooled(runs, **{**DEFAULTS, key: value})[:2]
                    for value in values
                ]
            )
            axis.plot(points[:, 0], points[:, 1], label=f"{NAMES[key]} alone")
        best = np.array([row[1][:2] for row in front(tables[name])])
        axis.plot(best[:, 0], best[:, 1], "k.", label="best of the grid")
        default = pooled(runs, **DEFAULTS)
        axis.plot(default[0], default[1], "r*", ms=12, label="defaults")
        axis.set_title(name)
        axis.set_xlabel("kept share (coverage)")
        axis.set_ylabel(f"wrong (> {WRONG:g} px) among kept")
        axis.set_xlim(0, 1.02)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(OUT, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
