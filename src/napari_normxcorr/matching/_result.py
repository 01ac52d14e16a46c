"""What matching says about each point: statuses, surfaces, the result."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from ..core._strain import gradient_source, strain, window_gradients
from ..io._files import write_columns


class Status(str, Enum):
    """Verdict on one matched point, most serious first."""

    OK = "ok"
    OUTSIDE_IMAGE = "outside image"
    NON_FINITE = "non-finite data"
    NO_FIT = "template does not fit"
    TOO_LITTLE_DATA = "too little data"
    FLAT_TEMPLATE = "flat template"
    LOW_SCORE = "low score"
    ON_BORDER = "peak on search border"
    AMBIGUOUS = "ambiguous"
    TWO_MOTIONS = "two motions"
    EDGE_ONLY = "edge only"
    UNCERTAIN = "uncertain"
    INCONSISTENT = "failed consistency"
    OUTLIER = "outlier"
    REPLACED = "replaced"
    TRANSFORM_OUTLIER = "transform outlier"
    LOST = "lost"

    def __str__(self) -> str:
        return self.value


def statuses(count: int, status: Status = Status.OK) -> np.ndarray:
    """An object array of `count` times `status`, as Status members.

    ``np.full`` would store plain strings: Status is a str, and numpy
    converts it on the way in.
    """
    array = np.empty(count, dtype=object)
    array.fill(status)
    return array


class Surface(NamedTuple):
    """Correlation surface of one point and where it lies in the target.

    Element ``q`` of `values` scores the match position ``origin + q``
    (pixel coordinates of the matched axes in the target image); `plane`
    holds the leading (unmatched) coordinates, empty for plain images.
    """

    values: np.ndarray
    origin: np.ndarray
    plane: tuple[int, ...]


class SurfaceSource(Protocol):
    """What recomputes the correlation surface of a point on demand."""

    def surface(
        self, point: np.ndarray, image_point: np.ndarray
    ) -> Surface | None: ...


# The quality columns of a table, after the positions.
_QUALITY = (
    "score",
    "distinctiveness",
    "second_score",
    "peak_ratio",
    "uncertainty",
    "motion_gap",
    "consistency",
    "neighbour_residual",
    "refined",
    "transform_residual",
    "transform_inlier",
    "status",
)


@dataclass
class MatchResult:
    """Where each point of interest went; rows line up with the input points.

    Attributes
    ----------
    points : (N, D) ndarray
        The points of interest in template-image pixel coordinates.
    image_points : (N, D) ndarray
        The starting guesses in the target image.
    matched : (N, D) ndarray
        Matched positions in target-image pixel coordinates (sub-pixel when
        refined); NaN where no match could be computed.
    offset : (N, D) ndarray
        ``matched - points``: the displacement of each point.
    score : (N,) ndarray
        NCC at the match, in [-1, 1] (NaN where not computed).
    second_score : (N,) ndarray
        Best NCC peak outside the match's neighbourhood.
    distinctiveness : (N,) ndarray
        ``score - second_score``: how far the match stands above the best
        alternative (near 0 for repetitive texture).
    peak_ratio : (N,) ndarray
        ``(1 - second_score) / (1 - score)``: how much closer to a perfect
        match the peak is than the best alternative (1 for a tie, large
        for a clear peak; scale-aware, unlike the difference). Both
        distances are floored at 1e-4, the precision of the scores.
    uncertainty : (N,) ndarray
        Largest standard deviation (px) of the match position, the
        square root of the largest eigenvalue of `covariance`; infinite
        where the peak is a ridge (a template with a straight edge only).
    motion_gap : (N,) ndarray
        Largest NCC gain of a quadrant of the template at its own best
        offset, 3 px or more from the match (of the offsets within 3 px;
        0 when every quadrant is best near the match): large where the
        window holds two motions, e.g. across a depth edge. NaN for masked
        windows, templates under 5 px and where no quadrant has texture.
    covariance : (N, d, d) ndarray
        Covariance (px²) of the match position in the matched axes: from
        the curvature of the NCC peak and the residual noise or, where a
        warp was fitted and says more, from the fit's residual (noise and
        misfit alike); NaN where unbounded or not computed.
    gradient : (N, d, d) ndarray
        Displacement gradient d u_i / d x_j at each match, in the matched
        axes' order (rows, cols): the fitted warp's linear part minus the
        identity; NaN where no warp was fitted (see ``shape_order``).
    neighbour_residual : (N,) ndarray
        Distance of the offset from what its nearest ok matches predict
        (a robust local affine fit) over the median of theirs from their
        own predictions (after Westerweel & Scarano); NaN for a point
        without enough neighbours.
    consistency : (N,) ndarray
        Distance in pixels between the point and the match of the matched
        position back into the template image (NaN when not checked).
    refined : (N,) ndarray of bool
        True where Gauss-Newton sub-pixel refinement converged; False where
        the position comes from a parabola fit (or whole pixels).
    transform_residual : (N,) ndarray
        Distance in pixels from the match to where a fitted transform puts
        the point (NaN until a fit is applied, see ``TransformFit.flag``).
    transform_inlier : (N,) ndarray of bool
        True for the rows that support the fitted transform.
    status : (N,) ndarray of Status
        Verdict per point, see :class:`Status`.
    """

    points: np.ndarray
    image_points: np.ndarray
    matched: np.ndarray
    offset: np.ndarray
    score: np.ndarray
    second_score: np.ndarray
    distinctiveness: np.ndarray
    consistency: np.ndarray
    refined: np.ndarray
    transform_residual: np.ndarray
    transform_inlier: np.ndarray
    status: np.ndarray
    peak_ratio: np.ndarray = field(default_factory=lambda: np.empty(0))
    uncertainty: np.ndarray = field(default_factory=lambda: np.empty(0))
    motion_gap: np.ndarray = field(default_factory=lambda: np.empty(0))
    covariance: np.ndarray = field(default_factory=lambda: np.empty(0))
    neighbour_residual: np.ndarray = field(default_factory=lambda: np.empty(0))
    gradient: np.ndarray = field(default_factory=lambda: np.empty(0))
    _context: SurfaceSource | None = field(default=None, repr=False)
    _surfaces: dict[int, Surface] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Columns not given (a result built by hand) are not computed.
        n, d = self.points.shape
        for name in (
            "peak_ratio",
            "uncertainty",
            "motion_gap",
            "neighbour_residual",
        ):
            if len(getattr(self, name)) != n:
                setattr(self, name, np.full(n, np.nan))
        # Over the matched axes, as match_points gives them: those of the
        # images' Matcher when known, else every axis.
        matched = getattr(self._context, "ndim", None)
        m = matched if isinstance(matched, int) else d
        for name in ("covariance", "gradient"):
            if len(getattr(self, name)) != n:
                setattr(self, name, np.full((n, m, m), np.nan))

    def __len__(self) -> int:
        return len(self.points)

    @classmethod
    def concatenate(cls, results: Sequence[MatchResult]) -> MatchResult:
        """One result holding the rows of `results` in order.

        All parts must come from the same images and settings (as when a
        long run is split into chunks).
        """
        if not results:
            raise ValueError("concatenate needs at least one result")
        columns = {
            name: np.concatenate([getattr(r, name) for r in results])
            for name in ROW_FIELDS
        }
        # Kept surfaces are indexed by row: they do not carry over.
        return cls(**columns, _context=results[0]._context, _surfaces=None)

    def take(self, rows: npt.ArrayLike | slice) -> MatchResult:
        """The rows `rows` (indices, a boolean mask or a slice) as a
        result."""
        columns = {name: getattr(self, name)[rows] for name in ROW_FIELDS}
        return MatchResult(**columns, _context=self._context)

    def put(self, rows: npt.ArrayLike, part: MatchResult) -> None:
        """Overwrite rows `rows` with the rows of `part`, in place."""
        for name in ROW_FIELDS:
            getattr(self, name)[rows] = getattr(part, name)

    def without(self, rows: Sequence[int]) -> MatchResult:
        """This result with rows `rows` left out."""
        keep = np.ones(len(self), dtype=bool)
        keep[list(rows)] = False
        return self.take(keep)

    def extended(self, count: int) -> MatchResult:
        """This result with `count` unmatched rows at the end (to be
        matched: NaN, False and status ``outside image``)."""
        columns = {}
        for name in ROW_FIELDS:
            values = getattr(self, name)
            extra = np.empty((count, *values.shape[1:]), dtype=values.dtype)
            if values.dtype == object:
                extra = statuses(count, Status.OUTSIDE_IMAGE)
            elif values.dtype == bool:
                extra[...] = False
            else:
                extra[...] = np.nan
            columns[name] = np.concatenate([values, extra])
        return MatchResult(**columns, _context=self._context, _surfaces=None)

    def surface(self, index: int) -> Surface:
        """Recompute the correlation surface of point `index`."""
        if self._surfaces and index in self._surfaces:
            return self._surfaces[index]
        if self._context is None:
            raise ValueError("this result holds no images to recompute from")
        found = self._context.surface(
            self.points[index], self.image_points[index]
        )
        if found is None:
            raise ValueError(
                f"point {index} has no correlation surface (status: "
                f"{self.status[index]})."
            )
        return found

    def strain(
        self, kind: str = "green-lagrange", method: str = "subset"
    ) -> np.ndarray:
        """Strain at each match, (N, d, d): from its fitted warp
        (`gradient`, ``method='subset'``) or from a strain window over its
        ok neighbours (``'window'``, see ``TrackResult.strain``); NaN
        where neither is known. `kind` as :func:`napari_normxcorr.strain`.
        """
        if gradient_source(method) == "subset":
            return strain(self.gradient, kind)
        d = self.gradient.shape[-1]
        gradient = window_gradients(
            self.points[:, -d:], self.offset[:, -d:], self.status == Status.OK
        )
        return strain(gradient, kind)

    def to_table(self) -> dict[str, np.ndarray]:
        """Columns of the result: positions per axis, offsets, quality.

        Column names are ``point-0 ...``, ``matched-0 ...``,
        ``offset-0 ...`` (one per axis), ``gradient-i-j`` (d u_i / d x_j,
        one per pair of matched axes) followed by the quality columns;
        ``pandas.DataFrame(result.to_table())`` gives a data frame.
        """
        table = {}
        for name, values in (
            ("point", self.points),
            ("matched", self.matched),
            ("offset", self.offset),
        ):
            for axis in range(values.shape[1]):
                table[f"{name}-{axis}"] = values[:, axis]
        for i in range(self.gradient.shape[1]):
            for j in range(self.gradient.shape[2]):
                table[f"gradient-{i}-{j}"] = self.gradient[:, i, j]
        for name in _QUALITY:
            table[name] = getattr(self, name)
        table["status"] = np.array([str(s) for s in self.status])
        return table

    def to_csv(
        self,
        path: str | os.PathLike[str],
        positions: npt.ArrayLike | None = None,
    ) -> None:
        """Write the result as napari's points CSV, one row per point.

        The columns are ``index, axis-0, axis-1, ...`` (as napari's File >
        Save Selected Layers writes a Points layer, so that napari opens
        the file as points) followed by every column of :meth:`to_table`.

        Parameters
        ----------
        path : str or PathLike
            File to write.
        positions : (N, D') array_like, optional
            Coordinates for the ``axis-*`` columns: by default the matched
            positions (the file opens as the matches); the points layer's
            data, for instance, to read the points of interest back.
        """
        if positions is None:
            positions = self.matched
        positions = np.asarray(positions, dtype=float).reshape(len(self), -1)
        columns: dict[str, np.ndarray] = {"index": np.arange(len(self))}
        for axis in range(positions.shape[1]):
            columns[f"axis-{axis}"] = positions[:, axis]
        columns.update(self.to_table())
        write_columns(path, columns)


# The per-row columns of a MatchResult (its other fields are shared).
ROW_FIELDS = [
    f.name for f in fields(MatchResult) if not f.name.startswith("_")
]
