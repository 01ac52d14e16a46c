"""A fit as a versioned JSON file a user can read, and back.

One writer for the API (``TransformFit.to_json``) and the command line
(``register -o transform.json``), and one reader that refuses a bad file
with a ValueError naming the file and what is wrong with it. Floats are
written by ``repr`` (what :mod:`json` does), so they read back to the bit;
NaN and infinity, which JSON lacks, are written as null.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "json_rows", "read_record", "write_record"]

FORMAT = "napari-normxcorr transform"
VERSION = 1
# Keys every version-1 file has; "points", "matched" and "status" are
# there when the fit comes with its matches.
_REQUIRED = (
    "model",
    "ndim",
    "matrix",
    "inverse",
    "inliers",
    "residuals",
    "rms",
    "threshold",
    "exact",
)


def json_rows(values: np.ndarray) -> list[Any]:
    """A 1-D or 2-D array as (nested) lists of floats, None where not
    finite."""
    array = np.asarray(values, dtype=float)
    if array.ndim > 1:
        return [json_rows(row) for row in array]
    return [float(v) if np.isfinite(v) else None for v in array]


def write_record(record: dict[str, Any], path: str | Path) -> None:
    """Write `record` (plain JSON values) to `path`, one key a line and
    one matrix row a line, so that the file reads like the matrix."""
    lines = []
    for key, value in record.items():
        if value and isinstance(value, list) and isinstance(value[0], list):
            rows = ",\n    ".join(_dumps(row) for row in value)
            text = f"[\n    {rows}\n  ]"
        else:
            text = _dumps(value)
        lines.append(f"  {json.dumps(key)}: {text}")
    Path(path).write_text("{\n" + ",\n".join(lines) + "\n}\n")


def _dumps(value: Any) -> str:
    # allow_nan=False: a NaN that slipped through fails here, not in the
    # reader of a file that is not JSON.
    return json.dumps(value, allow_nan=False)


def read_record(path: str | Path) -> dict[str, Any]:
    """The fields of a :class:`TransformFit` from a file `write_record`
    wrote, checked.

    Parameters
    ----------
    path : str or Path
        The JSON file.

    Returns
    -------
    dict
        ``model``, ``matrix``, ``inverse``, ``inliers``, ``residuals``,
        ``rms``, ``threshold`` and ``exact``; null residuals and rms as
        NaN. The points and matches in the file are not read.

    Raises
    ------
    ValueError
        Naming `path`: not JSON, not a transform file, another version, a
        missing key, or a value of the wrong type or shape, non-finite or
        inconsistent (an inverse that is not the matrix's).
    OSError
        If the file cannot be read.
    """
    try:
        record = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a JSON file ({error})") from None
    try:
        return _fields(record)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _fields(record: Any) -> dict[str, Any]:
    """The checked fields of a parsed file, or a ValueError saying why."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(
            f'not a transform file (no "format": "{FORMAT}"); '
            "write one with TransformFit.to_json or register -o"
        )
    version = record.get("version")
    if version != VERSION:
        raise ValueError(
            f"version {version!r}, but this napari-normxcorr reads "
            f"version {VERSION}"
            + (": upgrade napari-normxcorr" if _newer(version) else "")
        )
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(map(repr, missing))}")
    if not isinstance(record["model"], str):
        raise ValueError(f"model must be a string, got {record['model']!r}")
    ndim = record["ndim"]
    if type(ndim) is not int or ndim < 1:
        raise ValueError(f"ndim must be a positive integer, got {ndim!r}")
    matrix = _matrix(record, "matrix", ndim)
    inverse = _matrix(record, "inverse", ndim)
    product = matrix @ inverse
    # Tolerance from the sizes involved: a hand-edited matrix shows here.
    with np.errstate(divide="ignore", invalid="ignore"):
        product = product / product[-1, -1]
    if not np.allclose(
        product,
        np.eye(ndim + 1),
        atol=1e-9 * np.abs(matrix).max() * np.abs(inverse).max(),
    ):
        raise ValueError("inverse is not the inverse of matrix")
    inliers = record["inliers"]
    if not isinstance(inliers, list) or not all(
        isinstance(flag, bool) for flag in inliers
    ):
        raise ValueError("inliers must be a list of true and false")
    residuals = _numbers(record["residuals"], "residuals", len(inliers))
    return {
        "model": record["model"],
        "matrix": matrix,
        "inverse": inverse,
        "inliers": np.array(inliers, dtype=bool),
        "residuals": residuals,
        "rms": _rms(record["rms"]),
        "threshold": _threshold(record["threshold"]),
        "exact": _flag(record["exact"], "exact"),
    }


def _newer(version: object) -> bool:
    return type(version) is int and version > VERSION


def _matrix(record: dict[str, Any], key: str, ndim: int) -> np.ndarray:
    """record[key] as a finite (ndim+1, ndim+1) float array, or raise."""
    size = ndim + 1
    try:
        matrix = _float_array(record[key])
    except (TypeError, ValueError):
        raise ValueError(
            f"{key} must be a {size} x {size} array of numbers"
        ) from None
    if matrix.shape != (size, size):
        raise ValueError(
            f"{key} has shape {matrix.shape}; a {ndim}-D transform needs "
            f"({size}, {size})"
        )
    if not np.isfinite(matrix).all():
        raise ValueError(f"{key} holds null, NaN or infinity")
    return matrix


def _numbers(values: Any, key: str, count: int) -> np.ndarray:
    """`values`: `count` numbers or nulls, as floats (null -> NaN)."""
    if not isinstance(values, list) or len(values) != count:
        raise ValueError(f"{key} must be a list of {count} numbers or null")
    if not all(v is None or _is_number(v) for v in values):
        raise ValueError(f"{key} must hold numbers or null only")
    return np.array([np.nan if v is None else v for v in values], float)


def _float_array(values: Any) -> np.ndarray:
    """Nested lists of numbers (null -> NaN) as a float array; raise
    TypeError or ValueError for anything else."""
    if not isinstance(values, list) or not all(
        isinstance(row, list) and all(v is None or _is_number(v) for v in row)
        for row in values
    ):
        raise TypeError("not a list of rows of numbers")
    return np.array(
        [[np.nan if v is None else v for v in row] for row in values], float
    )


def _is_number(value: Any) -> bool:
    # JSON's true and false are bools, which Python counts as ints.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rms(value: Any) -> float:
    """The rms: a number >= 0, or null (an exact fit: no residual)."""
    if value is None:
        return float("nan")
    if not _is_number(value) or not 0 <= value < np.inf:
        raise ValueError(f"rms must be a number >= 0 or null, got {value!r}")
    return float(value)


def _threshold(value: Any) -> float:
    if not _is_number(value) or not 0 < value < np.inf:
        raise ValueError(f"threshold must be a positive number, got {value!r}")
    return float(value)


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value
