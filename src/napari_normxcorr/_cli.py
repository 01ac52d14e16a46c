"""Command line: match points, or register two images, without a viewer.

napari-normxcorr match TEMPLATE IMAGE POINTS.csv -o matched.csv
napari-normxcorr register TEMPLATE IMAGE POINTS.csv -o transform.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._arrays import grey, is_colour
from ._grid import grid_points
from ._io import (
    InputError,
    check_output_directory,
    check_output_file,
    read_image,
    read_points,
)
from ._match import match_points, matched_axes
from ._result import Status
from ._transform import MODELS

MATCH_EXAMPLE = """\
example:
  napari-normxcorr match before.tif after.tif points.csv -o matched.csv \\
      --template-radius 15 --search-radius 40 --surfaces surfaces/

POINTS.csv is napari's points CSV (File > Save Selected Layers):
  index,axis-0,axis-1
  0,120.0,340.5
The output keeps that layout with the matched positions in the axis-*
columns, followed by point-*, matched-*, offset-*, score,
distinctiveness, second_score, consistency, refined, transform_residual,
transform_inlier and status (one row per input point).
"""

REGISTER_EXAMPLE = """\
example:
  napari-normxcorr register before.tif after.tif points.csv \\
      --model affine -o transform.json --warped aligned.tif

The points are matched, a transform is fitted robustly to the ok matches
and refined by matching again through it, until it stops changing.
transform.json holds the model, the (D+1)x(D+1) matrix mapping template
pixels (row, col) to target pixels (as napari's affine), its inverse,
the inliers, residuals and RMS, and the points with their matches.
--warped writes IMAGE resampled onto TEMPLATE's pixel grid (float32 TIFF).
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
    _add_match(commands)
    _add_register(commands)
    return main


def _add_match(commands: Any) -> None:
    """The `match` command and its options."""
    match = commands.add_parser(
        "match",
        help="match the points of a CSV from TEMPLATE into IMAGE",
        description="Match the points of POINTS.csv (napari's points "
        "CSV, pixel coordinates of TEMPLATE) into IMAGE.",
        epilog=MATCH_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # A grid may stand in for the points file.
    _add_inputs(match, "CSV to write", points_optional=True)
    match.add_argument(
        "--grid",
        type=float,
        metavar="SPACING",
        help="match a regular grid of points SPACING px apart (at least "
        "the template radius from the borders) instead of POINTS.csv",
    )
    for which in ("template", "image"):
        match.add_argument(
            f"--{which}-mask",
            type=Path,
            metavar="FILE",
            help=f"image file the shape of {which.upper()}: nonzero "
            "pixels hold no data and are ignored",
        )
    match.add_argument(
        "--nodata",
        type=float,
        metavar="VALUE",
        help="pixels of this value hold no data (NaN always counts)",
    )
    match.add_argument(
        "--surfaces",
        type=Path,
        metavar="DIR",
        help="also write each point's correlation surface as "
        "DIR/surface-<index>.npy",
    )


def _add_register(commands: Any) -> None:
    """The `register` command and its options."""
    register = commands.add_parser(
        "register",
        help="fit a transform from TEMPLATE to IMAGE through the points",
        description="Register IMAGE to TEMPLATE: match the points of "
        "POINTS.csv, fit a transform robustly, refine it by guided "
        "matching, and write it as JSON.",
        epilog=REGISTER_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_inputs(register, "JSON to write the transform to")
    register.add_argument(
        "--model",
        choices=MODELS,
        default="affine",
        help="transform model (default affine; projective in 2-D only)",
    )
    register.add_argument(
        "--no-robust",
        action="store_true",
        help="plain least squares on every ok match (no RANSAC)",
    )
    register.add_argument(
        "--threshold",
        type=float,
        metavar="PX",
        help="inlier threshold in pixels (default: from the matches)",
    )
    register.add_argument(
        "--warped",
        type=Path,
        metavar="OUT.tif",
        help="also write IMAGE resampled onto TEMPLATE's grid",
    )
    register.add_argument(
        "--matches",
        type=Path,
        metavar="CSV",
        help="also write the final matches (napari's points CSV)",
    )


def _add_inputs(
    command: argparse.ArgumentParser,
    output: str,
    points_optional: bool = False,
) -> None:
    """The arguments `match` and `register` share."""
    command.add_argument("template", type=Path, help="image the points are on")
    command.add_argument("image", type=Path, help="image to find them in")
    command.add_argument(
        "points",
        type=Path,
        nargs="?" if points_optional else None,
        help="napari points CSV",
    )
    command.add_argument(
        "-o", "--output", type=Path, required=True, help=output
    )
    command.add_argument(
        "--template-radius",
        type=radius,
        default=50,
        help="patch radius in pixels, or one per axis: 15 or 5,15,15 "
        "(default 50)",
    )
    command.add_argument(
        "--search-radius",
        type=radius,
        default=200,
        help="search window radius in pixels, or one per axis: 40 or "
        "13,70 (default 200)",
    )
    command.add_argument(
        "--no-subpixel",
        action="store_true",
        help="whole-pixel matches only",
    )


def main(argv: list[str] | None = None) -> int:
    commands = parser()
    args = commands.parse_args(argv)
    grid = getattr(args, "grid", None)
    if (args.points is None) == (grid is None):
        commands.error("give either POINTS.csv or --grid SPACING")
    command = _match if args.command == "match" else _register
    try:
        _check_outputs(args)
        template, image, points = _read_inputs(args)
        command(args, template, image, points)
    except (InputError, ValueError, OSError) as error:
        print(f"napari-normxcorr: error: {error}", file=sys.stderr)
        return 1
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Every file asked for can be written: checked before any work."""
    check_output_file(args.output, "-o")
    for option in ("warped", "matches"):
        path = getattr(args, option, None)
        if path is not None:
            check_output_file(path, f"--{option}")
    if getattr(args, "surfaces", None) is not None:
        check_output_directory(args.surfaces, "--surfaces")


def _read_inputs(
    args: argparse.Namespace,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two images (grey) and the points: from the CSV, or a grid."""
    raw = read_image(args.template)
    if args.points is not None:
        points, _ = read_points(args.points)
        ndim = points.shape[1]
    else:
        ndim = matched_axes(args.template_radius, args.search_radius, raw.ndim)
    template = as_grey(raw, ndim)
    image = as_grey(read_image(args.image), ndim)
    if args.points is None:
        if template.ndim != ndim:
            raise ValueError(
                f"--grid needs {ndim}-D images (the matched axes only); "
                f"{args.template} has shape {template.shape}"
            )
        points = grid_points(
            template.shape, args.grid, margin=args.template_radius
        )
    return template, image, points


def _mask_options(args: argparse.Namespace) -> dict[str, Any]:
    """The no-data keywords of `match_points` that were asked for."""
    options: dict[str, Any] = {}
    for which in ("template", "image"):
        path = getattr(args, f"{which}_mask", None)
        if path is not None:
            options[f"{which}_mask"] = read_image(path) != 0
    if getattr(args, "nodata", None) is not None:
        options["nodata"] = args.nodata
    return options


def _window_options(args: argparse.Namespace, count: int) -> dict[str, Any]:
    return {
        "template_radius": args.template_radius,
        "search_radius": args.search_radius,
        "subpixel": not args.no_subpixel,
        "progress": _progress_bar(count),
    }


def _match(
    args: argparse.Namespace,
    template: np.ndarray,
    image: np.ndarray,
    points: np.ndarray,
) -> None:
    """`match`: one CSV row per point, and the surfaces when asked."""
    result = match_points(
        template,
        image,
        points,
        **_window_options(args, len(points)),
        **_mask_options(args),
    )
    result.to_csv(args.output)
    if args.surfaces:
        args.surfaces.mkdir(parents=True, exist_ok=True)
        for i in range(len(result)):
            try:
                surface = result.surface(i)
            except ValueError:
                continue
            np.save(args.surfaces / f"surface-{i}.npy", surface.values)
    ok = int(np.sum(result.status == Status.OK))
    print(
        f"{ok} of {len(result)} points matched ok; wrote {args.output}",
        file=sys.stderr,
    )


def _register(
    args: argparse.Namespace,
    template: np.ndarray,
    image: np.ndarray,
    points: np.ndarray,
) -> None:
    """`register`: the transform as JSON, and the warped image if asked."""
    from ._register import register
    from ._warp import warp

    fit = register(
        template,
        image,
        points,
        model=args.model,
        robust=not args.no_robust,
        threshold=args.threshold,
        **_window_options(args, len(points)),
    )
    record = fit.to_dict()
    if fit.matches is not None:
        record["points"] = fit.matches.points.tolist()
        record["matched"] = [
            [float(v) if np.isfinite(v) else None for v in row]
            for row in fit.matches.matched
        ]
        if args.matches:
            fit.matches.to_csv(args.matches)
    args.output.write_text(json.dumps(record, indent=2))
    if args.warped:
        import tifffile

        # Cubic: an exported image should not be blurred by resampling.
        aligned = warp(image, fit, template.shape, order=3)
        aligned = np.asarray(aligned, dtype=np.float32)
        tifffile.imwrite(args.warped, aligned)
    print(
        f"{fit.model}: {int(fit.inliers.sum())} of {len(fit.inliers)} "
        f"matches are inliers, RMS {fit.rms:.3f} px; wrote {args.output}",
        file=sys.stderr,
    )


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
