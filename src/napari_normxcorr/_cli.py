"""Command line: match points, register two images, or track points
through a time series, without a viewer.

napari-normxcorr match TEMPLATE IMAGE POINTS.csv -o matched.csv
napari-normxcorr register TEMPLATE IMAGE POINTS.csv -o transform.json
napari-normxcorr track STACK POINTS.csv -o tracks.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ._arrays import grey, is_colour
from ._grid import grid_points
from ._io import (
    InputError,
    check_output_directory,
    check_output_file,
    open_tiff,
    open_zarr,
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
lost), point, t, position-* (one per frame axis), score,
distinctiveness, status and refreshed.
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


def as_grey(image: Any, ndim: int) -> Any:
    """RGB(A) images (one extra trailing axis of 3 or 4) become luminance
    (lazily for zarr)."""
    return grey(image) if is_colour(image, ndim) else image


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


def main(argv: list[str] | None = None) -> int:
    commands = parser()
    args = commands.parse_args(argv)
    grid = getattr(args, "grid", None)
    if (args.points is None) == (grid is None):
        commands.error("give either POINTS.csv or --grid SPACING")
    try:
        _check_outputs(args)
        if args.command == "track":
            _track(args)
        else:
            command = _match if args.command == "match" else _register
            command(args, *_read_inputs(args))
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
) -> tuple[Any, Any, np.ndarray]:
    """The two images (grey) and the points: from the CSV, or a grid."""
    raw = _read_image(args.template)
    if args.points is not None:
        points, _ = read_points(args.points)
        ndim = points.shape[1]
    else:
        ndim = matched_axes(args.template_radius, args.search_radius, raw.ndim)
    template = as_grey(raw, ndim)
    image = as_grey(_read_image(args.image), ndim)
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


def _read_image(path: Path) -> Any:
    """An image file: zarr and TIFF opened lazily where their layout
    allows (see `open_tiff`), others read whole."""
    if path.suffix.lower() == ".zarr":
        return open_zarr(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        return open_tiff(path)
    return read_image(path)


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
    template: Any,
    image: Any,
    points: np.ndarray,
) -> None:
    """`match`: one CSV row per point, and the surfaces when asked."""
    with _cluster(args) as client:
        result = match_points(
            template,
            image,
            points,
            **_window_options(args, len(points)),
            **_mask_options(args),
            client=client,
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
    template: Any,
    image: Any,
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


def _track(args: argparse.Namespace) -> None:
    """`track`: one CSV row per vertex (point and frame)."""
    from ._track import track_points

    stack = _read_image(args.stack)
    points, _ = read_points(args.points)
    with _cluster(args) as client:
        # On a cluster, progress comes as points done (tasks finished).
        progress = (
            _progress_bar(stack.shape[0], "frames")
            if client is None
            else _progress_bar(len(points))
        )
        result = track_points(
            stack,
            points,
            template_radius=args.template_radius,
            search_radius=args.search_radius,
            reference=args.reference,
            subpixel=not args.no_subpixel,
            progress=progress,
            client=client,
        )
    result.to_csv(args.output)
    status = np.asarray(result.status)
    ok = int(np.count_nonzero(status == Status.OK))
    print(
        f"{len(points)} points through {status.shape[1]} frames: {ok} of "
        f"{status.size} vertices ok; wrote {args.output}",
        file=sys.stderr,
    )


@contextmanager
def _cluster(args: argparse.Namespace) -> Iterator[Any]:
    """The distributed.Client that --scheduler or --workers ask for, or
    None; a local cluster lives as long as the block."""
    address = getattr(args, "scheduler", None)
    workers = getattr(args, "workers", None)
    if address is None and workers is None:
        yield None
        return
    try:
        from distributed import Client

        from ._distributed import local_cluster
    except ImportError:
        raise InputError(
            "--scheduler and --workers need dask.distributed: pip install "
            "napari-normxcorr[distributed]"
        ) from None
    if address is not None:
        with Client(address) as client:
            yield client
        return
    assert workers is not None  # no --scheduler: --workers was given
    with local_cluster(workers) as client:
        yield client


def _progress_bar(
    total: int, unit: str = "points"
) -> Callable[[int, int], None] | None:
    """A text progress bar on stderr, for runs long enough to need one."""
    if total < (50 if unit == "points" else 5) or not sys.stderr.isatty():
        return None

    def show(done: int, of: int) -> None:
        filled = int(30 * done / of)
        bar = "#" * filled + "." * (30 - filled)
        print(f"\r[{bar}] {done}/{of} {unit}", end="", file=sys.stderr)
        if done == of:
            print(file=sys.stderr)

    return show


if __name__ == "__main__":
    sys.exit(main())
