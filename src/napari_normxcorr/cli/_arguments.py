"""The command line's arguments: the parser of `match`, `register` and
`track`, with an example under each command's help."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..registration._transform import MODELS

MATCH_EXAMPLE = """\
example:
  napari-normxcorr match before.tif after.tif points.csv -o matched.csv \\
      --template-radius 15 --search-radius 40 --surfaces surfaces/

POINTS.csv is napari's points CSV (File > Save Selected Layers):
  index,axis-0,axis-1
  0,120.0,340.5
The output keeps that layout with the matched positions in the axis-*
columns, followed by point-*, matched-*, offset-*, gradient-*-*, score,
distinctiveness, second_score, peak_ratio, uncertainty, motion_gap,
consistency, neighbour_residual, refined, transform_residual,
transform_inlier and status (one row per input point).
"""

TRACK_EXAMPLE = """\
example:
  napari-normxcorr track frames.tif points.csv -o tracks.csv \\
      --template-radius 15 --search-radius 30 --reference adaptive

STACK is a time series, time first: (t, rows, cols) or (t, z, rows, cols).
POINTS.csv is napari's points CSV of a Points layer over it, the time
column first (axis-0 = t): each point is tracked forwards and backwards
from its frame. The output has one row per vertex: track_id (-1 where
lost), point, t, position-* (one per frame axis), gradient-*-* (the
fitted warp's displacement gradient), score, distinctiveness, status and
refreshed.
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
--transform FILE starts from such a file (refine a saved fit, or one made
from a few pairs clicked by hand) where phase correlation would fail.
--warped writes IMAGE resampled onto TEMPLATE's pixel grid (float32 TIFF).
"""


FIELD_EXAMPLE = """\
example:
  napari-normxcorr field frame_a.tif frame_b.tif -o field.csv \\
      --spacing 16 --template-radius 16 --pixel-size 0.1 --unit mm \\
      --frame-interval 0.001 --time-unit s

A vector on every point of a grid SPACING px apart, by passes of window
deformation (PIV, DIC). The CSV has one row per grid point: point-*,
offset-* (pixels), x, y, u, v (physical position and velocity; x along
the columns, y down the rows), status (ok, replaced, or why not), score,
peak_ratio, uncertainty, vorticity and strain-i-j (Green-Lagrange).
"""


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


def positive(text: str) -> float:
    """'0.5': a finite number > 0 (a threshold)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number > 0")
    return value


def _worker_count(text: str) -> int:
    """'2': a number of worker processes, at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number >= 1")
    return int(text)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="napari-normxcorr",
        description="Find where points of interest went between two images "
        "(normalized cross-correlation).",
    )
    commands = main.add_subparsers(dest="command", required=True)
    _add_match(commands)
    _add_register(commands)
    _add_track(commands)
    _add_field(commands)
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
    _add_no_data(match)
    match.add_argument(
        "--surfaces",
        type=Path,
        metavar="DIR",
        help="also write each point's correlation surface as "
        "DIR/surface-<index>.npy",
    )
    _add_cluster(match)


def _add_cluster(
    command: argparse.ArgumentParser, verb: str = "match"
) -> None:
    """--scheduler or --workers: `verb` (match, track) on a dask cluster."""
    where = command.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=f"{verb} on the dask.distributed cluster at ADDRESS (e.g. "
        "tcp://10.0.0.1:8786); its workers must read the input files",
    )
    where.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help=f"{verb} on a local dask cluster of N worker processes, "
        "started and stopped by this command",
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
        help="transform model (default affine, or that of --transform; "
        "projective in 2-D only)",
    )
    register.add_argument(
        "--transform",
        type=Path,
        metavar="FILE",
        help="start from the fit in FILE (a transform.json written by -o "
        "or by Export fit) instead of phase correlation",
    )
    register.add_argument(
        "--no-robust",
        action="store_true",
        help="plain least squares on every ok match (no RANSAC)",
    )
    register.add_argument(
        "--threshold",
        type=positive,
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


def _add_track(commands: Any) -> None:
    """The `track` command and its options."""
    track = commands.add_parser(
        "track",
        help="track the points of a CSV through every frame of STACK",
        description="Track the points of POINTS.csv (napari's points CSV, "
        "time column first) through every frame of STACK.",
        epilog=TRACK_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    track.add_argument(
        "stack", type=Path, help="time series, time first (or .zarr)"
    )
    track.add_argument("points", type=Path, help="napari points CSV")
    track.add_argument(
        "-o", "--output", type=Path, required=True, help="CSV to write"
    )
    track.add_argument(
        "--template-radius",
        type=radius,
        default=15,
        help="patch radius in pixels, or one per axis (default 15)",
    )
    track.add_argument(
        "--search-radius",
        type=radius,
        default=30,
        help="search radius around the predicted position (default 30)",
    )
    track.add_argument(
        "--reference",
        choices=("adaptive", "first", "previous"),
        default="adaptive",
        help="which frame each template comes from (default adaptive: "
        "the point's first frame until its score drops, then refreshed)",
    )
    track.add_argument(
        "--no-subpixel", action="store_true", help="whole-pixel tracks only"
    )
    _add_cluster(track, "track")


def _add_field(commands: Any) -> None:
    """The `field` command and its options."""
    field = commands.add_parser(
        "field",
        help="a dense displacement field from TEMPLATE to IMAGE (PIV, DIC)",
        description="Vectors on a regular grid from TEMPLATE to IMAGE, by "
        "passes of window deformation, with strain and vorticity.",
        epilog=FIELD_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    field.add_argument("template", type=Path, help="first image")
    field.add_argument("image", type=Path, help="second image")
    field.add_argument(
        "-o", "--output", type=Path, required=True, help="CSV to write"
    )
    field.add_argument(
        "--spacing",
        type=positive,
        default=16.0,
        help="grid step in pixels (default 16)",
    )
    field.add_argument(
        "--template-radius",
        type=radius,
        default=16,
        help="window radius of the last passes (default 16: 33-px windows)",
    )
    field.add_argument(
        "--search-radius",
        type=radius,
        help="first search radius; vectors up to SEARCH - TEMPLATE px "
        "long are found (default twice the template radius)",
    )
    field.add_argument(
        "--passes",
        type=_worker_count,
        default=3,
        help="1: one pass; 3 (default): a coarse pass and two with window "
        "deformation",
    )
    for name, kind, default, text in (
        ("--pixel-size", positive, 1.0, "size of a pixel (default 1)"),
        ("--unit", str, "px", "unit of the pixel size (default px)"),
        ("--frame-interval", positive, 1.0, "time between the images"),
        ("--time-unit", str, "frame", "unit of the frame interval"),
    ):
        field.add_argument(name, type=kind, default=default, help=text)
    _add_no_data(field)


def _add_no_data(command: argparse.ArgumentParser) -> None:
    """--template-mask, --image-mask and --nodata."""
    for which in ("template", "image"):
        command.add_argument(
            f"--{which}-mask",
            type=Path,
            metavar="FILE",
            help=f"image file the shape of {which.upper()}: nonzero "
            "pixels hold no data and are ignored",
        )
    command.add_argument(
        "--nodata",
        type=float,
        metavar="VALUE",
        help="pixels of this value hold no data (NaN always counts)",
    )


def _add_inputs(
    command: argparse.ArgumentParser,
    output: str,
    points_optional: bool = False,
) -> None:
    """The arguments `match` and `register` share."""
    command.add_argument(
        "template", type=Path, help="image the points are on (or .zarr)"
    )
    command.add_argument(
        "image", type=Path, help="image to find them in (or .zarr)"
    )
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
    command.add_argument(
        "--shape-order",
        type=int,
        choices=(1, 2, 0),
        default=1,
        help="warp of the sub-pixel fit: 1 affine (default, gives the "
        "gradient-* columns), 2 quadratic, 0 a shift only",
    )
