"""Files: images in the formats napari's own dependencies read, points CSV."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np


class InputError(Exception):
    """A file that cannot be used, with the reason for the user."""


def read_image(path: Path) -> np.ndarray:
    """Read .npy, TIFF, or any format imageio reads (PNG, JPEG, ...)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
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


def read_points(path: Path) -> tuple[np.ndarray, list[str]]:
    """Points from napari's CSV: columns ``axis-0, axis-1, ...``."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
        header = list(rows[0]) if rows else []
    axes = sorted(
        (h for h in header if h.startswith("axis-")),
        key=lambda h: int(h.split("-")[1]),
    )
    if not rows or not axes:
        raise InputError(
            f"{path}: expected napari's points CSV with a header "
            "'index,axis-0,axis-1,...' and one row per point"
        )
    try:
        points = np.array([[float(r[a]) for a in axes] for r in rows])
    except ValueError as error:
        raise InputError(
            f"{path}: a coordinate is not a number ({error})"
        ) from error
    return points, axes


def write_columns(
    path: str | os.PathLike[str], columns: Mapping[str, Iterable[object]]
) -> None:
    """Write equal-length columns as CSV, header first."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))
