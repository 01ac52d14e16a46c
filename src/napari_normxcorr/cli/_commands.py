"""The command line's commands: read the inputs, run the engine, write
the outputs; every error a one-line message and exit code 1, Ctrl-C a
line and exit code 130. Outputs are written whole or not at all."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core._arrays import grey, is_colour
from ..fields._grid import grid_points
from ..fields._match_field import match_field
from ..io._files import (
    InputError,
    StagedOutputs,
    check_distinct,
    check_output_directory,
    check_output_file,
    open_tiff,
    open_zarr,
    read_image,
    read_points,
    staged_outputs,
)
from ..matching._match import match_points, matched_axes
from ..matching._result import Status
from ._arguments import parser

if TYPE_CHECKING:
    from ..registration._transform import TransformFit


def as_grey(image: Any, ndim: int) -> Any:
    """RGB(A) images (one extra trailing axis of 3 or 4) become luminance
    (lazily for zarr)."""
    return grey(image) if is_colour(image, ndim) else image


def main(argv: list[str] | None = None) -> int:
    commands = parser()
    args = commands.parse_args(argv)
    grid = getattr(args, "grid", None)
    if args.command in ("match", "register") and (args.points is None) == (
        grid is None
    ):
        commands.error("give either POINTS.csv or --grid SPACING")
    try:
        _check_outputs(args)
        if args.command == "track":
            _track(args)
        elif args.command == "field":
            _field(args)
        else:
            command = _match if args.command == "match" else _register
            command(args, *_read_inputs(args))
    except (InputError, ValueError, TypeError, OSError) as error:
        print(f"napari-normxcorr: error: {error}", file=sys.stderr)
        return 1
    except MemoryError as error:
        print(
            f"napari-normxcorr: error: out of memory: {error}", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C.
        print(
            "napari-normxcorr: interrupted; nothing written", file=sys.stderr
        )
        return 130
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Every file asked for can be written, and none is an input or
    another output: checked before any work."""
    outputs = [("-o", args.output)]
    for option in ("warped", "matches"):
        path = getattr(args, option, None)
        if path is not None:
            outputs.append((f"--{option}", path))
    for option, path in outputs:
        check_output_file(path, option)
    if getattr(args, "surfaces", None) is not None:
        check_output_directory(args.surfaces, "--surfaces")
        outputs.append(("--surfaces", args.surfaces))
    names = ("template", "image", "points", "stack", "template_mask")
    inputs = [
        getattr(args, name, None)
        for name in (*names, "image_mask", "transform")
    ]
    check_distinct(outputs, [path for path in inputs if path is not None])


def _read_inputs(
    args: argparse.Namespace,
) -> tuple[Any, Any, np.ndarray]:
    """The two images (grey) and the points: from the CSV, or a grid."""
    raw = _read_image(args.template)
    if args.points is not None:
        # match flags a point without a position; register needs them all.
        points, _ = read_points(args.points, finite=args.command == "register")
        ndim = points.shape[1]
    else:
        ndim = matched_axes(args.template_radius, args.search_radius, raw.ndim)
    template = as_grey(raw, ndim)
    image = as_grey(_read_image(args.image), ndim)
    if args.points is not None and template.ndim != ndim:
        raise InputError(
            f"{args.points}: {ndim} axis columns, but {args.template} has "
            f"{template.ndim} axes (shape {tuple(template.shape)}); give "
            "one axis-k column per image axis"
        )
    if image.ndim != template.ndim:
        raise InputError(
            f"{args.image}: has {image.ndim} axes (shape "
            f"{tuple(image.shape)}) but {args.template} has "
            f"{template.ndim} (shape {tuple(template.shape)})"
        )
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
        "shape_order": args.shape_order,
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
    with staged_outputs() as outputs:
        outputs.write(args.output, "-o", result.to_csv)
        if args.surfaces:
            outputs.write_folder(
                args.surfaces,
                "--surfaces",
                lambda into: _surfaces(result, into),
            )
    ok = int(np.sum(result.status == Status.OK))
    print(
        f"{ok} of {len(result)} points matched ok; wrote {args.output}",
        file=sys.stderr,
    )


def _field(args: argparse.Namespace) -> None:
    """`field`: the grid's vectors, written as CSV."""
    template = _read_image(args.template)
    image = _read_image(args.image)
    ndim = template.ndim - int(is_colour(template, template.ndim - 1))
    template, image = as_grey(template, ndim), as_grey(image, ndim)
    options = {
        name: getattr(args, name)
        for name in ("pixel_size", "unit", "frame_interval", "time_unit")
    }
    if args.search_radius is not None:
        options["search_radius"] = args.search_radius
    result = match_field(
        np.asarray(template),
        np.asarray(image),
        args.spacing,
        template_radius=args.template_radius,
        passes=args.passes,
        progress=_progress_bar(args.passes),
        **options,
        **_mask_options(args),
    )
    with staged_outputs() as outputs:
        outputs.write(args.output, "-o", result.to_csv)
    given = int((result.ok | (result.status == Status.REPLACED)).sum())
    print(
        f"{given} of {result.status.size} vectors "
        f"({int(result.ok.sum())} ok); wrote {args.output}",
        file=sys.stderr,
    )


def _surfaces(result: Any, folder: Path) -> None:
    """Each row's correlation surface as folder/surface-<row>.npy."""
    for i in range(len(result)):
        try:
            surface = result.surface(i)
        except ValueError:  # no surface: a row outside the image, say
            continue
        np.save(folder / f"surface-{i}.npy", surface.values)


def _register(
    args: argparse.Namespace,
    template: Any,
    image: Any,
    points: np.ndarray,
) -> None:
    """`register`: the transform as JSON, and the warped image if asked."""
    from ..registration._register import register
    from ..registration._warp import warp

    start = _starting_fit(args, template.ndim)
    model = args.model or (start.model if start else "affine")
    fit = register(
        template,
        image,
        points,
        model=model,
        transform=start,
        robust=not args.no_robust,
        threshold=args.threshold,
        **_window_options(args, len(points)),
    )
    with staged_outputs() as outputs:
        outputs.write(args.output, "-o", fit.to_json)
        if args.matches and fit.matches is not None:
            outputs.write(args.matches, "--matches", fit.matches.to_csv)
        if args.warped:
            # Cubic: an exported image should not be blurred by resampling.
            aligned = warp(image, fit, template.shape, order=3)
            _write_tiff(outputs, args.warped, aligned)
    print(f"{fit.summary}; wrote {args.output}", file=sys.stderr)


def _starting_fit(args: argparse.Namespace, ndim: int) -> TransformFit | None:
    """The fit of --transform, or None; raise if its axes are not the
    matched axes of the images."""
    if args.transform is None:
        return None
    # Imported here: the other commands need no registration.
    from ..registration._transform import TransformFit

    start = TransformFit.from_json(args.transform)
    matched = matched_axes(args.template_radius, args.search_radius, ndim)
    if start.ndim != matched:
        raise InputError(
            f"{args.transform}: a {start.ndim}-D transform, but the images "
            f"are matched in {matched} axes"
        )
    return start


def _write_tiff(outputs: StagedOutputs, path: Path, image: Any) -> None:
    """`image` as a float32 TIFF at `path` (--warped), staged."""
    import tifffile

    aligned = np.asarray(image, dtype=np.float32)
    outputs.write(
        path, "--warped", lambda into: tifffile.imwrite(into, aligned)
    )


def _track(args: argparse.Namespace) -> None:
    """`track`: one CSV row per vertex (point and frame)."""
    from ..tracking._track import track_points

    # A point without a position has no frame to start from.
    points, _ = read_points(args.points, finite=True)
    stack = _read_stack(args.stack, points.shape[1])
    if stack.ndim != points.shape[1]:
        raise InputError(
            f"{args.points}: {points.shape[1]} axis columns, but "
            f"{args.stack} has {stack.ndim} axes (shape "
            f"{tuple(stack.shape)}); give one per axis, the time first"
        )
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
    with staged_outputs() as outputs:
        outputs.write(args.output, "-o", result.to_csv)
    status = np.asarray(result.status)
    ok = int(np.count_nonzero(status == Status.OK))
    print(
        f"{len(points)} points through {status.shape[1]} frames: {ok} of "
        f"{status.size} vertices ok; wrote {args.output}",
        file=sys.stderr,
    )


def _read_stack(path: Path, columns: int) -> Any:
    """The time series at `path`, grey, for points of `columns` axes."""
    stack = _read_image(path)
    if is_colour(stack, columns):
        return grey(stack)
    if stack.ndim == columns and stack.shape[-1] in (3, 4):
        if path.suffix.lower() not in (".npy", ".zarr"):
            # (rows, cols, RGB): one colour picture, not rows of frames.
            raise InputError(
                f"{path}: is one colour image (shape {tuple(stack.shape)}),"
                " not a time series; give the frames as one stack, time "
                "first"
            )
    return stack


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

        from ..io._cluster import local_cluster
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
