"""Command line: match points from a CSV without a viewer.

napari-normxcorr match TEMPLATE IMAGE POINTS.csv -o matched.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._arrays import grey, is_colour
from ._io import InputError, read_image, read_points
from ._match import match_points

EXAMPLE = """\
example:
  napari-normxcorr match before.tif after.tif points.csv -o matched.csv \\
      --template-radius 15 --search-radius 40 --surfaces surfaces/

POINTS.csv is napari's points CSV (File > Save Selected Layers):
  index,axis-0,axis-1
  0,120.0,340.5
The output keeps that layout with the matched positions in the axis-*
columns, followed by point-*, matched-*, offset-*, score,
distinctiveness, second_score, consistency, refined and status (one row
per input point).
"""


def as_grey(image: np.ndarray, ndim: int) -> np.ndarray:
    """RGB(A) images (one extra trailing axis of 3 or 4) become luminance."""
    return np.asarray(grey(image)) if is_colour(image, ndim) else image


def radius(text: str) -> int | tuple[int, ...]:
    """'15' or '5,15,15' (one per matched axis)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an int or a comma-separated list of ints"
        ) from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: radii must be >= 0")
    return values[0] if len(values) == 1 else values


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="napari-normxcorr",
        description="Find where points of interest went between two images "
        "(normalized cross-correlation).",
    )
    commands = main.add_subparsers(dest="command", required=True)
    match = commands.add_parser(
        "match",
        help="match the points of a CSV from TEMPLATE into IMAGE",
        description="Match the points of POINTS.csv (napari's points "
        "CSV, pixel coordinates of TEMPLATE) into IMAGE.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    match.add_argument("template", type=Path, help="image the points are on")
    match.add_argument("image", type=Path, help="image to find them in")
    match.add_argument("points", type=Path, help="napari points CSV")
    match.add_argument(
        "-o", "--output", type=Path, required=True, help="CSV to write"
    )
    match.add_argument(
        "--template-radius",
        type=radius,
        default=50,
        help="patch radius in pixels, or one per axis: 15 or 5,15,15 "
        "(default 50)",
    )
    match.add_argument(
        "--search-radius",
        type=radius,
        default=200,
        help="search window radius in pixels, or one per axis: 40 or "
        "13,70 (default 200)",
    )
    match.add_argument(
        "--no-subpixel",
        action="store_true",
        help="whole-pixel matches only",
    )
    match.add_argument(
        "--surfaces",
        type=Path,
        metavar="DIR",
        help="also write each point's correlation surface as "
        "DIR/surface-<index>.npy",
    )
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        points, _ = read_points(args.points)
        template = as_grey(read_image(args.template), points.shape[1])
        image = as_grey(read_image(args.image), points.shape[1])
        result = match_points(
            template,
            image,
            points,
            template_radius=args.template_radius,
            search_radius=args.search_radius,
            subpixel=not args.no_subpixel,
            progress=_progress_bar(len(points)),
        )
    except (InputError, ValueError) as error:
        print(f"napari-normxcorr: error: {error}", file=sys.stderr)
        return 1
    result.to_csv(args.output)
    if args.surfaces:
        args.surfaces.mkdir(parents=True, exist_ok=True)
        for i in range(len(result)):
            try:
                surface = result.surface(i)
            except ValueError:
                continue
            np.save(args.surfaces / f"surface-{i}.npy", surface.values)
    ok = int(np.sum(result.status == "ok"))
    print(
        f"{ok} of {len(result)} points matched ok; wrote {args.output}",
        file=sys.stderr,
    )
    return 0


def _progress_bar(total: int) -> Callable[[int, int], None] | None:
    """A text progress bar on stderr, for runs long enough to need one."""
    if total < 50 or not sys.stderr.isatty():
        return None

    def show(done: int, of: int) -> None:
        filled = int(30 * done / of)
        bar = "#" * filled + "." * (30 - filled)
        print(f"\r[{bar}] {done}/{of} points", end="", file=sys.stderr)
        if done == of:
            print(file=sys.stderr)

    return show


if __name__ == "__main__":
    sys.exit(main())
