"""Demo: match points of interest across scikit-image's stereo pair.

``python -m napari_normxcorr.demo`` (or ``make demo``) opens napari with the
left and right images of ``skimage.data.stereo_motorcycle()``, a Points
layer of textured places on the left image and the matching widget docked,
ready to press Run. With ``--headless`` (what ``make demo`` does without a
display, under Xvfb) it runs the match itself, prints each match next to
the ground-truth disparity, and writes the result table (CSV) and a
screenshot of the viewer (PNG).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import MatchResult, Status
from .io._samples import stereo_images, stereo_points

if TYPE_CHECKING:
    import napari

    from ._napari.widget import MatchWidget


def open_viewer(
    show: bool = True,
) -> tuple[napari.Viewer, MatchWidget, np.ndarray]:
    """A viewer with the stereo pair, the points and the widget docked."""
    import napari

    left, right, disparity = stereo_images()
    viewer = napari.Viewer(title="napari-normxcorr demo", show=show)
    viewer.window.resize(1400, 900)
    viewer.add_image(left, name="left")
    viewer.add_image(right, name="right", visible=False)
    points = viewer.add_points(
        stereo_points(left),
        name="points of interest",
        size=12,
        face_color="transparent",
        border_color="cyan",
        border_width=0.15,
    )
    _, widget = viewer.window.add_plugin_dock_widget(
        "napari-normxcorr", "Match points (NCC)"
    )
    widget.template_layer.value = viewer.layers["left"]
    widget.image_layer.value = viewer.layers["right"]
    widget.points_layer.value = points
    # Rectified pair: the match lies along the same row (a search radius of
    # 13 rows lets it move 3 rows), up to ~60 px left.
    widget.template_radius.value = 10
    widget.search_radius.value = (13, 70)
    return viewer, widget, disparity


def run_headless(output: Path) -> int:
    """Match in a real (Xvfb) viewer, print, and save CSV and screenshot."""
    import imageio.v3 as iio
    from qtpy.QtWidgets import QApplication

    viewer, widget, disparity = open_viewer(show=True)
    worker = widget.run()
    if worker is None:
        return 1
    try:
        widget.wait_until_done(timeout=300)
    except TimeoutError:
        print("The match did not finish in 5 minutes.", file=sys.stderr)
        return 1
    result = widget.result
    if result is None:
        print("The match failed (see the message above).", file=sys.stderr)
        return 1
    viewer.layers["right"].visible = True
    viewer.layers["left"].visible = False
    viewer.reset_view()
    QApplication.processEvents()
    output.mkdir(parents=True, exist_ok=True)
    csv = output / "matches.csv"
    png = output / "screenshot.png"
    result.to_csv(csv)
    iio.imwrite(png, viewer.screenshot(canvas_only=False, flash=False))
    report(result, disparity)
    print(f"Wrote {csv.resolve()}\nWrote {png.resolve()}")
    viewer.close()
    return 0


def report(result: MatchResult, disparity: np.ndarray) -> None:
    """Print each match with the ground-truth disparity."""
    truth = disparity[tuple(np.rint(result.points).astype(int).T)]
    print(
        "Points of the left image found in the right image "
        "(row, col in pixels):"
    )
    print(
        f"{'point':>16} {'matched':>18} {'disparity':>9} {'truth':>6} "
        f"{'score':>6}  status"
    )
    for i, point in enumerate(result.points):
        found = result.matched[i]
        print(
            f"({point[0]:5.0f}, {point[1]:5.0f})   "
            f"({found[0]:7.2f}, {found[1]:7.2f})  "
            f"{-result.offset[i, 1]:9.2f} {truth[i]:6.2f} "
            f"{result.score[i]:6.3f}  {result.status[i]}"
        )
    ok = result.status == Status.OK
    error = np.abs(-result.offset[ok, 1] - truth[ok])
    print(
        f"\n{ok.sum()} of {len(result)} matches ok; their disparity is "
        f"off the ground truth by {np.median(error):.2f} px (median)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--headless",
        action="store_true",
        help="run the match, write CSV and screenshot, and exit",
    )
    parser.add_argument(
        "--output",
        default="demo-output",
        type=Path,
        help="folder for matches.csv and screenshot.png (headless)",
    )
    args = parser.parse_args(argv)
    if args.headless:
        return run_headless(args.output)
    import napari

    open_viewer(show=True)
    print("Press Run in the 'Match points (NCC)' panel.")
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
