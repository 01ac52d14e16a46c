"""Demo: match points of interest across scikit-image's stereo pair.

Run ``python -m napari_normxcorr.demo`` (or ``make demo``). It picks
textured points on the left image of ``skimage.data.stereo_motorcycle()``,
finds them in the right image, prints each match next to the ground-truth
disparity and writes the result table as CSV.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from . import Status, match_points


def stereo_points(left: np.ndarray, count: int = 12) -> np.ndarray:
    """`count` textured points of `left`, spread over the image."""
    mean = ndimage.uniform_filter(left, 21)
    spread = np.sqrt(
        np.maximum(ndimage.uniform_filter(left**2, 21) - mean**2, 0)
    )
    rows = np.linspace(80, left.shape[0] - 80, 3).astype(int)
    cols = np.linspace(160, left.shape[1] - 80, count // 3).astype(int)
    points = []
    for r in rows:
        for c in cols:
            # The most textured pixel near each grid node.
            patch = spread[r - 20 : r + 21, c - 20 : c + 21]
            dr, dc = np.unravel_index(np.argmax(patch), patch.shape)
            points.append((r - 20 + dr, c - 20 + dc))
    return np.array(points, dtype=float)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--headless",
        action="store_true",
        help="no viewer (the only mode until the napari widget lands)",
    )
    parser.add_argument(
        "--output",
        default="demo-output",
        type=Path,
        help="folder for matches.csv (default: demo-output)",
    )
    args = parser.parse_args(argv)

    from skimage import data
    from skimage.color import rgb2gray

    left, right, disparity = data.stereo_motorcycle()
    left, right = rgb2gray(left), rgb2gray(right)
    points = stereo_points(left)
    # Rectified pair: search a wide band along the row, a few rows across.
    result = match_points(
        left,
        right,
        points,
        template_radius=10,
        search_radius=(13, 45),
        image_points=points - [0, 35],
    )
    truth = disparity[tuple(points.astype(int).T)]
    print(
        "Points of the left image found in the right image "
        "(row, col in pixels):"
    )
    print(
        f"{'point':>16} {'matched':>18} {'disparity':>9} {'truth':>6} "
        f"{'score':>6}  status"
    )
    for i, point in enumerate(points):
        found = result.matched[i]
        print(
            f"({point[0]:5.0f}, {point[1]:5.0f})   "
            f"({found[0]:7.2f}, {found[1]:7.2f})  "
            f"{-result.offset[i, 1]:9.2f} {truth[i]:6.2f} "
            f"{result.score[i]:6.3f}  {result.status[i]}"
        )
    args.output.mkdir(parents=True, exist_ok=True)
    csv = args.output / "matches.csv"
    result.to_csv(csv)
    ok = result.status == Status.OK
    error = np.abs(-result.offset[ok, 1] - truth[ok])
    print(
        f"\n{ok.sum()} of {len(points)} matches ok; their disparity is "
        f"off the ground truth by {np.median(error):.2f} px (median)."
    )
    print(f"Wrote {csv.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
