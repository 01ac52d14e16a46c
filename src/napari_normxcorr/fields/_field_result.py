"""FieldResult: the vectors of match_field on their grid, and what follows
from them (gradient, strain, vorticity) in pixels or physical units."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core._strain import divergence, principal_strains, strain, vorticity
from ..io._files import write_columns
from ..matching._result import Status

# Names of the axes in x, y, z columns: the last image axis is x.
_PHYSICAL_AXES = {2: ("y", "x"), 3: ("z", "y", "x")}
_VELOCITY_NAMES = {"x": "u", "y": "v", "z": "w"}


@dataclass(frozen=True)
class Units:
    """Pixel size per axis with its unit, and the time between images."""

    pixel_size: np.ndarray
    unit: str
    frame_interval: float
    time_unit: str

    @classmethod
    def of(
        cls,
        pixel_size: float | Sequence[float],
        unit: str,
        frame_interval: float,
        time_unit: str,
        d: int,
    ) -> Units:
        """Checked units for `d` axes, or a ValueError naming the bad one."""
        size = np.atleast_1d(np.asarray(pixel_size, dtype=float))
        if size.ndim != 1 or size.size not in (1, d):
            raise ValueError(
                f"pixel_size has {size.size} entries for {d} axes: give one "
                "number, or one per axis."
            )
        if not np.all(np.isfinite(size) & (size > 0)):
            raise ValueError(
                f"pixel_size must be finite and > 0, got {pixel_size!r}."
            )
        interval = float(frame_interval)
        if not (np.isfinite(interval) and interval > 0):
            raise ValueError(
                "frame_interval must be finite and > 0, got "
                f"{frame_interval!r}."
            )
        for name, text in (("unit", unit), ("time_unit", time_unit)):
            if not isinstance(text, str):
                raise ValueError(f"{name} must be a string, got {text!r}.")
        return cls(
            np.broadcast_to(size, (d,)).copy(), unit, interval, time_unit
        )


@dataclass
class FieldResult:
    """Displacement vectors on a regular grid, as match_field gives them.

    Attributes
    ----------
    points : (*grid, D) ndarray
        The grid points in template-image pixels (rows, cols[, ...]).
    offset : (*grid, D) ndarray
        Displacement of each point (px): where it went minus where it
        was; the neighbours' mean where ``status`` is ``replaced``; NaN
        where nothing was measured.
    status : (*grid) ndarray of Status
        ``ok``, ``replaced`` (failed a check, replaced by its good
        neighbours' mean), or why a vector failed (as in match_points).
    score, peak_ratio : (*grid) ndarray
        NCC and peak ratio of the last pass's match (of the measurement,
        for replaced vectors too).
    covariance : (*grid, D, D) ndarray
        Covariance (px²) of the last pass's match position.
    spacing : (D,) ndarray
        Grid step along each axis (px).
    units : Units
        Pixel size and unit, time between the images and its unit.
    """

    points: np.ndarray
    offset: np.ndarray
    status: np.ndarray
    score: np.ndarray
    peak_ratio: np.ndarray
    covariance: np.ndarray
    spacing: np.ndarray
    units: Units

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's shape."""
        return self.status.shape

    @property
    def ok(self) -> np.ndarray:
        """Where the vector is a measurement that passed every check."""
        return self.status == Status.OK

    @property
    def uncertainty(self) -> np.ndarray:
        """Largest standard deviation (px) of each match position (the
        square root of the largest eigenvalue of `covariance`); NaN where
        not computed."""
        cov = self.covariance
        finite = np.isfinite(cov).all(axis=(-1, -2))
        out = np.full(self.shape, np.nan)
        out[finite] = np.sqrt(
            np.maximum(np.linalg.eigvalsh(cov[finite])[..., -1], 0)
        )
        return out

    @property
    def displacement(self) -> np.ndarray:
        """`offset` in physical units (``units.unit``), NaN where neither
        ok nor replaced."""
        usable = self.ok | (self.status == Status.REPLACED)
        values = np.where(usable[..., None], self.offset, np.nan)
        return values * self.units.pixel_size

    @property
    def velocity(self) -> np.ndarray:
        """`displacement` per `units.frame_interval`."""
        return self.displacement / self.units.frame_interval

    @property
    def gradient(self) -> np.ndarray:
        """Displacement gradient ``d u_i / d x_j`` at each grid point,
        (*grid, D, D), dimensionless: central differences of the ok and
        replaced vectors over the grid (one-sided at the edges), NaN
        beside a missing vector."""
        size = self.units.pixel_size
        values = self.displacement
        d = values.shape[-1]
        steps = self.spacing * size
        out = np.full((*self.shape, d, d), np.nan)
        for j in range(d):
            if self.shape[j] < 2:
                continue
            out[..., :, j] = np.gradient(values, steps[j], axis=j)
        return out

    def strain(self, kind: str = "green-lagrange") -> np.ndarray:
        """Strain tensor at each grid point (*grid, D, D), see
        :func:`napari_normxcorr.strain`."""
        return strain(self.gradient, kind)

    def principal_strains(self, kind: str = "green-lagrange") -> np.ndarray:
        """Principal strains at each grid point, largest first, (*grid, D)."""
        return principal_strains(self.strain(kind))

    def vorticity(self) -> np.ndarray:
        """Curl of the velocity (per ``units.time_unit``): in 2-D a scalar
        per point, positive counter-clockwise as the image is shown; see
        :func:`napari_normxcorr.core.vorticity` for 3-D."""
        return vorticity(self.gradient) / self.units.frame_interval

    def divergence(self) -> np.ndarray:
        """Divergence of the velocity (per ``units.time_unit``)."""
        return divergence(self.gradient) / self.units.frame_interval

    def to_table(self) -> dict[str, np.ndarray]:
        """One row per grid point, in C order.

        ``point-0 ...`` and ``offset-0 ...`` (pixels, image axes, as in
        match_points' tables); ``x, y[, z]`` and ``u, v[, w]`` (physical
        position and velocity, x along the columns, y down the rows as the
        image is shown), ``status``, ``score``, ``peak_ratio``,
        ``uncertainty`` (px), ``vorticity`` (2-D) and the Green-Lagrange
        strains ``strain-i-j``.
        """
        d = self.points.shape[-1]
        flat = int(np.prod(self.shape))
        table: dict[str, np.ndarray] = {}
        for axis in range(d):
            table[f"point-{axis}"] = self.points[..., axis].reshape(flat)
        for axis in range(d):
            table[f"offset-{axis}"] = self.offset[..., axis].reshape(flat)
        names = _PHYSICAL_AXES[d]
        where = self.points * self.units.pixel_size
        velocity = self.velocity
        for axis in reversed(range(d)):
            table[names[axis]] = where[..., axis].reshape(flat)
        for axis in reversed(range(d)):
            name = _VELOCITY_NAMES[names[axis]]
            table[name] = velocity[..., axis].reshape(flat)
        table["status"] = np.array([str(s) for s in self.status.reshape(flat)])
        table["score"] = self.score.reshape(flat)
        table["peak_ratio"] = self.peak_ratio.reshape(flat)
        table["uncertainty"] = self.uncertainty.reshape(flat)
        if d == 2:
            table["vorticity"] = self.vorticity().reshape(flat)
        tensor = self.strain()
        for i in range(d):
            for j in range(i, d):
                table[f"strain-{i}-{j}"] = tensor[..., i, j].reshape(flat)
        return table

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_table` as CSV (readable by pandas, Excel, or
        PIV tools as x, y, u, v)."""
        write_columns(path, self.to_table())

    def vector_length(self) -> float:
        """A length factor that draws the median vector (of those with a
        value) about one grid step long, rounded to 1, 2 or 5 times a
        power of ten (at least 1: short vectors of a slow flow are drawn
        longer, never long ones shorter)."""
        lengths = np.linalg.norm(self.offset, axis=-1)
        lengths = lengths[np.isfinite(lengths)]
        typical = float(np.median(lengths)) if lengths.size else 0.0
        if not typical > 0:
            return 1.0
        wanted = float(self.spacing.min()) / typical
        power = 10 ** np.floor(np.log10(wanted))
        nice = max(m for m in (1, 2, 5) if m * power <= wanted)
        return max(1.0, float(nice * power))

    def to_napari(self) -> list[tuple[Any, dict[str, Any], str]]:
        """napari layer data: the speed and, in 2-D, the vorticity and the
        largest principal strain as images over the grid, then the
        vectors with a value, all in
        physical units (``scale`` from the pixel size). Vectors are white
        where ok, orange where replaced, grey where doubtful.

        Returns
        -------
        list of (data, kwargs, layer_type)
            For ``getattr(viewer, f"add_{layer_type}")(data, **kwargs)``,
            or a napari reader.
        """
        return [*self._image_layers(), self._vector_layer()]

    def _vector_layer(self) -> tuple[Any, dict[str, Any], str]:
        shown = np.isfinite(self.offset).all(axis=-1)
        vectors = np.stack([self.points, self.offset], axis=-2)[shown]
        status = self.status[shown]
        # White measured and ok, orange replaced, grey doubtful.
        colours = np.select(
            [status == Status.OK, status == Status.REPLACED],
            [1, 2],
            0,
        )
        palette = np.array(
            [[0.6, 0.6, 0.6, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 0.6, 0.0, 1.0]]
        )
        style = {
            "name": "field vectors",
            "scale": self.units.pixel_size,
            "features": {
                "status": np.array([str(s) for s in status]),
                "score": self.score[shown],
            },
            "edge_color": palette[colours],
            "edge_width": 0.15 * float(self.spacing.min()),
            "length": self.vector_length(),
        }
        return vectors, style, "vectors"

    def _image_layers(self) -> list[tuple[Any, dict[str, Any], str]]:
        u = self.units
        grid = {
            "scale": self.spacing * u.pixel_size,
            "translate": self.points.reshape(-1, self.points.shape[-1])[0]
            * u.pixel_size,
        }
        speed = np.linalg.norm(self.velocity, axis=-1)
        images = [("speed", speed, "viridis", f"{u.unit}/{u.time_unit}")]
        if self.points.shape[-1] == 2:
            images.append(
                ("vorticity", self.vorticity(), "PiYG", f"1/{u.time_unit}")
            )
            images.append(
                (
                    "largest principal strain",
                    self.principal_strains()[..., 0],
                    "magma",
                    "",
                )
            )
        layers: list[tuple[Any, dict[str, Any], str]] = []
        for name, values, colormap, unit in images:
            style = {
                "name": f"{name} ({unit})" if unit else name,
                "colormap": colormap,
                "opacity": 0.7,
                "interpolation2d": "linear",
                # The speed shows first; the others a click away.
                "visible": not layers,
                **grid,
            }
            if colormap == "PiYG":
                # Diverging: zero in the middle of the colours.
                top = float(np.nanmax(np.abs(values), initial=0.0)) or 1.0
                style["contrast_limits"] = (-top, top)
            layers.append((values, style, "image"))
        return layers
