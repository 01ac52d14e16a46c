"""How far match_points' verdicts can be trusted: is an ``ok`` row right?

Accuracy, not time. Three sets with a known answer for every point:

(a) the Middlebury motorcycle pair (``skimage.data.stereo_motorcycle``,
    rectified: left (r, c) is right (r, c - disparity)), on a grid of
    points kept where the disparity at the point is finite (not occluded)
    and the template window has texture (local std above STD_MIN); for
    several template and search radii;
(b) scikit-image's ``brick`` shifted by BRICK_SHIFT (cubic spline), a
    27 x 27 grid; truth = point + shift;
(c) ``deformed_pair()`` of the sample data; truth = its 'true positions'.

A row is wrong when its match is more than WRONG px from the truth (or
has no match). For each set and setting it prints the share of rows
marked ok, the share wrong among the ok and among the flagged rows.

Each setting is matched once with the threshold tests off; the verdict at
thresholds (s, d, c) is then rebuilt from the result columns as
match_points does it (kept: status ok with the tests off, score >= s, not
distinctiveness < d and not consistency > c; statuses other than the
three threshold ones stay flagged), so the sweep needs no new matching.
The rebuilt verdict at the defaults is checked against a real run on the
deformed pair. The precision/coverage table pools each set's settings;
the curves (wrong among kept against kept share) go to verdicts.png.
Run: python benchmarks/bench_verdicts.py
"""

import itertools
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_normxcorr import Status, match_points
from napari_normxcorr._sample_data import deformed_pair, stereo_images

WRONG = 2.0  # px from the truth
STD_MIN = 0.04  # local std of a motorcycle template (grey in [0, 1])
BRICK_SHIFT = (0.3, 0.4)
DEFAULTS = {"s": 0.5, "d": 0.05, "c": 1.0}  # as match_points' defaults
OFF = dict(
    min_score=-np.inf,
    min_distinctiveness=-np.inf,
    max_consistency_error=np.inf,
)
SCORES = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
MARGINS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
CONSISTENCY = (0.25, 0.5, 1.0, 2.0, np.inf)
OUT = Path(__file__).resolve().parent / "verdicts.png"


class Run:
    """One set and setting: the columns the verdict is rebuilt from."""

    def __init__(self, label, result, truth):
        self.label = label
        error = np.linalg.norm(result.matched - truth, axis=1)
        self.wrong = ~(error <= WRONG)
        self.score = result.score
        self.distinctiveness = result.distinctiveness
        self.consistency = result.consistency
        # NaN scores are flagged 'low score' even with the tests off.
        self.open = np.isin(result.status, [Status.OK, Status.LOW_SCORE])

    def kept(self, s, d, c):
        with np.errstate(invalid="ignore"):
            return (
                self.open
                & (self.score >= s)
                & ~(self.distinctiveness < d)
                & ~(self.consistency > c)
            )


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
        runs.append(Run(f"motorcycle t{radius} s{search}", result, truth))
    return runs


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


def pooled(runs, s, d, c):
    kept = np.concatenate([run.kept(s, d, c) for run in runs])
    wrong = np.concatenate([run.wrong for run in runs])
    return shares(kept, wrong)


def front(table):
    """Rows no other row beats on both kept share and wrong among kept."""
    best, rows = np.inf, []
    for row in sorted(table, key=lambda row: (-row[3], row[4])):
        if row[4] < best:
            best = row[4]
            rows.append(row)
    return rows


def main():
    start = time.perf_counter()
    sets = {
        "motorcycle": motorcycle_runs(),
        "brick": brick_runs(),
        "deformed": deformed_runs(),
    }
    print(
        f"wrong: > {WRONG:g} px from the truth; verdicts at the defaults "
        f"(min_score {DEFAULTS['s']}, min_distinctiveness {DEFAULTS['d']}, "
        f"max_consistency_error {DEFAULTS['c']})"
    )
    print(
        f"{'set':<28} {'points':>6} {'ok':>6} {'wrong|ok':>9} "
        f"{'wrong|flagged':>13} {'wrong':>6}"
    )
    for runs in sets.values():
        for run in runs:
            kept_share, bad_kept, bad_flagged = shares(
                run.kept(**DEFAULTS), run.wrong
            )
            print(
                f"{run.label:<28} {len(run.wrong):6d} {kept_share:6.1%} "
                f"{bad_kept:9.1%} {bad_flagged:13.1%} {run.wrong.mean():6.1%}"
            )
    grid = list(itertools.product(SCORES, MARGINS, CONSISTENCY))
    tables = {
        name: [(s, d, c, *pooled(runs, s, d, c)) for s, d, c in grid]
        for name, runs in sets.items()
    }
    for name, table in tables.items():
        print(
            f"\n{name}: precision/coverage, all settings pooled; the "
            f"thresholds that no other beats on both (kept share, wrong "
            f"among kept), from {len(grid)} combinations"
        )
        print(
            f"{'min_score':>9} {'min_dist':>8} {'max_cons':>8} {'kept':>6} "
            f"{'wrong|kept':>10} {'wrong|flagged':>13}"
        )
        rows = front(table)
        # At most 12 rows, spread along the front.
        picks = np.unique(np.linspace(0, len(rows) - 1, 12).astype(int))
        for s, d, c, kept_share, bad_kept, bad_flagged in (
            rows[i] for i in picks
        ):
            print(
                f"{s:9.2f} {d:8.2f} {c:8.2f} {kept_share:6.1%} "
                f"{bad_kept:10.1%} {bad_flagged:13.1%}"
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
    sweeps = {
        "min_score": ("s", np.linspace(0, 1, 41)),
        "min_distinctiveness": ("d", np.linspace(0, 0.4, 41)),
        "max_consistency_error": ("c", np.geomspace(0.1, 20, 41)),
    }
    for axis, (name, runs) in zip(axes[0], sets.items(), strict=True):
        for label, (key, values) in sweeps.items():
            points = np.array(
                [
                    pooled(runs, **{**DEFAULTS, key: value})[:2]
                    for value in values
                ]
            )
            axis.plot(points[:, 0], points[:, 1], label=f"{label} alone")
        best = np.array([row[3:5] for row in front(tables[name])])
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
