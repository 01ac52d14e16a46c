"""Files: images in the formats napari's own dependencies read, points CSV."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


class InputError(Exception):
    """A file that cannot be used, with the reason for the user."""


def check_input_file(path: Path) -> None:
    """Raise unless `path` is a file to read."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")


def read_image(path: Path) -> np.ndarray:
    """Read .npy, TIFF, or any format imageio reads (PNG, JPEG, ...)."""
    check_input_file(path)
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        import imageio.v3 as iio

        return iio.imread(path)
    except Exception as error:
        raise InputError(
            f"{path}: cannot read it as an image ({error})"
        ) from error


def open_tiff(path: Path) -> Any:
    """A TIFF image, read only where needed when its layout allows.

    Uncompressed and contiguous: a numpy memmap of the file. Tiled: a
    `TiffTiles` array that reads (and a cluster's workers reopen) the
    tiles under each window. Otherwise (compressed strips, whose one
    chunk is the whole page) it is read whole, as `read_image` does.
    """
    check_input_file(path)
    import tifffile

    try:
        return tifffile.memmap(path, mode="r")
    except Exception:  # compressed, or not contiguous: not mappable
        pass
    try:
        tiles = TiffTiles(str(path))
    except Exception:  # no zarr, or a layout tifffile cannot view
        return read_image(path)
    if tiles.chunks == tiles.shape:
        return read_image(path)
    return tiles


class TiffTiles:
    """The first image of a tiled TIFF as a lazy array of its tiles
    (tifffile's zarr view), pickled as its path: whoever unpickles it
    reopens the file, so a cluster never ships its pixels."""

    def __init__(self, path: str):
        import tifffile
        import zarr

        self.path = path
        opened = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
        # A pyramid opens as a group: its full resolution.
        array: Any = opened["0"] if isinstance(opened, zarr.Group) else opened
        self._array = array
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.chunks = tuple(int(c) for c in array.chunks)

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self._array[index])

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (TiffTiles, (self.path,))


def open_zarr(path: Path) -> Any:
    """A zarr array, opened read-only: windows are read when needed.

    A group (an OME-Zarr image, say) gives its full-resolution array
    ``0``; any other group must be named down to the array.
    """
    if not path.exists():
        raise InputError(f"{path}: no such zarr store")
    try:
        import zarr
    except ImportError:
        raise InputError(
            f"{path}: reading zarr needs pip install "
            "napari-normxcorr[distributed]"
        ) from None
    try:
        store = zarr.open(str(path), mode="r")
    except Exception as error:
        raise InputError(f"{path}: cannot open it as zarr ({error})") from None
    if isinstance(store, zarr.Group):
        if "0" in store:
            return store["0"]
        names = ", ".join(sorted(store.array_keys())) or "none"
        raise InputError(
            f"{path}: is a zarr group; name one of its arrays ({names}), "
            f"e.g. {path}/<array>"
        )
    return store


def read_points(path: Path) -> tuple[np.ndarray, list[str]]:
    """Points from napari's CSV: columns ``axis-0, axis-1, ...``.

    NaN and infinite coordinates are read as they are (match_points
    flags their rows); a missing or non-numeric one is an InputError
    naming its line and column.
    """
    check_input_file(path)
    # utf-8-sig: spreadsheet programs put a byte order mark before axis-0.
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.reader(stream)
        header = [h.strip() for h in next(reader, [])]
        rows = [row for row in reader if row]  # blank lines hold nothing
    axes = sorted(
        (h for h in header if h.startswith("axis-")),
        key=lambda h: int(h.split("-")[1]),
    )
    if not rows or not axes:
        raise InputError(
            f"{path}: expected napari's points CSV with a header "
            "'index,axis-0,axis-1,...' and one row per point"
        )
    columns = [header.index(a) for a in axes]
    points = np.empty((len(rows), len(axes)))
    for line, row in enumerate(rows, start=2):
        if len(row) > len(header):
            raise InputError(
                f"{path}, line {line}: {len(row)} fields for the header's "
                f"{len(header)}"
            )
        for k, (axis, column) in enumerate(zip(axes, columns)):
            points[line - 2, k] = _coordinate(path, line, axis, row, column)
    return points, axes


def _coordinate(
    path: Path, line: int, axis: str, row: list[str], column: int
) -> float:
    """One coordinate of a points CSV, or an InputError saying where."""
    if column >= len(row):
        raise InputError(
            f"{path}, line {line}: no value in column {axis} (the row has "
            f"{len(row)} of the header's fields)"
        )
    try:
        return float(row[column])
    except ValueError:
        raise InputError(
            f"{path}, line {line}, column {axis}: {row[column]!r} is not a "
            "number"
        ) from None


def check_output_file(path: Path, option: str) -> None:
    """Raise unless a file can be written at `path` (before any work)."""
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory, not a file name")
    if not path.parent.is_dir():
        raise InputError(
            f"{option} {path}: the directory {path.parent} does not exist"
        )
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"{option} {path}: {path.parent} is not writable")


def check_output_directory(path: Path, option: str) -> None:
    """Raise unless `path` is, or can be made, a writable directory."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: exists and is not a directory")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise InputError(f"{option} {path}: {existing} is not writable")


def write_columns(
    path: str | os.PathLike[str], columns: Mapping[str, Iterable[object]]
) -> None:
    """Write equal-length columns as CSV, header first."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))
