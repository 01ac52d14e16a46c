"""Debug output of one correlation: pictures of the inputs and the surface,
and the peak as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt


def visualize_cross_correlation(
    debug_dir: str | Path,
    template: npt.ArrayLike,
    image: npt.ArrayLike,
    xc: npt.ArrayLike,
    peak: Sequence[int],
    peak_magnitude: float,
    offset: Sequence[float],
) -> None:
    """Save pictures and numbers of one correlation to `debug_dir`.

    Writes ``template.png`` and ``image.png`` (grey, stretched to their
    range), ``cross_correlation.png`` (blue -1, white 0, red +1) and
    ``cross_correlation_data.json`` with ``peak``, ``peak_magnitude`` and
    ``offset``. The folder is created if missing. Arrays with more than two
    axes are shown as their maximum projection over the leading axes.

    Parameters
    ----------
    debug_dir : str or Path
        Folder to write to.
    template, image : array_like
        The arrays that were correlated.
    xc : array_like
        Their normalized cross-correlation.
    peak : sequence of int
        Index of the peak in `xc`, one entry per axis.
    peak_magnitude : float
        Value of `xc` at the peak.
    offset : sequence of float
        Offset of the template's first element in the image, per axis.
    """
    import imageio.v3 as iio

    debug_dir = Path(debug_dir)
    debug_dir.mkdir(parents=True, exist_ok=True)
    iio.imwrite(debug_dir / "template.png", _grey_picture(template))
    iio.imwrite(debug_dir / "image.png", _grey_picture(image))
    iio.imwrite(debug_dir / "cross_correlation.png", _ncc_picture(xc))
    data = {
        "peak": [int(i) for i in peak],
        "peak_magnitude": float(peak_magnitude),
        "offset": [_plain_number(o) for o in offset],
    }
    text = json.dumps(data, indent=2)
    (debug_dir / "cross_correlation_data.json").write_text(text)


def _plain_number(value: float) -> int | float:
    """JSON-friendly number: int when it is whole, float otherwise."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _as_plane(values: npt.ArrayLike) -> np.ndarray:
    """A 2-D float view of any array: rows for 1-D, max projection for N-D."""
    plane = np.asarray(values, dtype=np.float64)
    if plane.ndim == 1:
        return plane[np.newaxis, :]
    return plane.reshape(-1, *plane.shape[-2:]).max(axis=0)


def _grey_picture(values: npt.ArrayLike) -> np.ndarray:
    """uint8 picture of `values` stretched from its minimum to its maximum."""
    plane = _as_plane(values)
    low, high = plane.min(), plane.max()
    scaled = (plane - low) / (high - low) if high > low else plane * 0
    return np.round(scaled * 255).astype(np.uint8)


def _ncc_picture(values: npt.ArrayLike) -> np.ndarray:
    """RGB picture of an NCC surface: blue at -1, white at 0, red at +1."""
    plane = np.clip(_as_plane(values), -1.0, 1.0)
    positive = np.clip(plane, 0, 1)[..., np.newaxis]
    negative = np.clip(-plane, 0, 1)[..., np.newaxis]
    white = np.ones(3)
    rgb = white - positive * (white - [1.0, 0.0, 0.0])
    rgb -= negative * (white - [0.0, 0.0, 1.0])
    return np.round(rgb * 255).astype(np.uint8)
