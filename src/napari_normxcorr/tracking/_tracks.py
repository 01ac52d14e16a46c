"""What tracking says about each point in each frame: the TrackResult."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..core._arrays import LazyArray
from ..core._strain import gradient_source, strain, window_gradients
from ..io._files import write_columns
from ..matching._result import Status

# The arrays of a TrackResult with one vertex per point and frame.
VERTEX_FIELDS = (
    "position",
    "score",
    "distinctiveness",
    "status",
    "refreshed",
    "gradient",
)


@dataclass
class TrackResult:
    """Vertices of every point in every frame, and the tracks they form.

    Arrays are indexed ``[point, frame]``: a point of the input has one
    vertex per frame of the stack.

    Attributes
    ----------
    points : (N, 1 + D) ndarray
        The points as given: (t, ..., row, col) in pixels.
    position : (N, T, D) ndarray
        Position of each point in each frame (all axes of a frame, in
        pixels); NaN where it is ``lost``.
    score : (N, T) ndarray
        NCC of the point's reference and the frame there.
    distinctiveness : (N, T) ndarray
        `score` minus the best NCC peak away from the match.
    status : (N, T) ndarray of Status
        Verdict per vertex; ``lost`` where the point left the image or was
        not found.
    refreshed : (N, T) ndarray of bool
        Where the point's reference was renewed from that frame.
    gradient : (N, T, D, D) ndarray
        Displacement gradient ``d u_i / d x_j`` of each vertex over the D
        tracked axes (the last D of a frame, in the stack's order: rows,
        cols): the linear part of the shape function minus the identity,
        of the mapping from the point's own frame (the one it was given
        in) to frame t, at the point. 0 in the point's own frame; NaN
        where no shape function was fitted: whole-pixel tracking, lost
        vertices, and vertices whose refinement did not converge (left
        at their whole-pixel match).
    stack : array_like, optional
        The stack tracked through (for :func:`estimate_drift`).
    """

    points: np.ndarray
    position: np.ndarray
    score: np.ndarray
    distinctiveness: np.ndarray
    status: np.ndarray
    refreshed: np.ndarray
    gradient: np.ndarray
    stack: LazyArray | None = field(default=None, repr=False)

    @classmethod
    def lost(
        cls, points: np.ndarray, stack: LazyArray, ndim: int | None = None
    ) -> TrackResult:
        """`points` (N, 1 + D) lost in every frame of `stack`: where a
        tracker starts; `ndim` tracked axes (default: every axis of a
        frame)."""
        n, frames = len(points), stack.shape[0]
        d = stack.ndim - 1 if ndim is None else ndim
        return cls(
            points=points,
            position=np.full((n, frames, stack.ndim - 1), np.nan),
            score=np.full((n, frames), np.nan),
            distinctiveness=np.full((n, frames), np.nan),
            status=np.full((n, frames), Status.LOST, dtype=object),
            refreshed=np.zeros((n, frames), dtype=bool),
            gradient=np.full((n, frames, d, d), np.nan),
            stack=stack,
        )

    def __len__(self) -> int:
        return len(self.points)

    @property
    def ok(self) -> np.ndarray:
        """(N, T) bool: vertices with status ``ok``."""
        return self.status == Status.OK

    def strain(
        self,
        kind: str = "green-lagrange",
        method: str = "window",
        radius: float | None = None,
    ) -> np.ndarray:
        """Strain of each vertex from its point's own frame, (N, T, D, D).

        Parameters
        ----------
        kind : {'green-lagrange', 'small', 'engineering'}, optional
            See :func:`napari_normxcorr.strain`.
        method : {'window', 'subset'}, optional
            Where the displacement gradient comes from, as DIC codes offer:

            - ``'window'`` (default): a strain window, the affine map
              fitted by least squares to the displacements of the ok
              vertices of the points within `radius` (given in the same
              frame); its baseline is the points' spacing, not a subset,
              so noise weighs far less.
            - ``'subset'``: each vertex's own shape function
              (:attr:`gradient`), local to its template but noisier.
        radius : float, optional
            Reach of the strain window (px); default 1.5 times the median
            spacing of the points (the 3 x 3 neighbours on a grid).

        Returns
        -------
        (N, T, D, D) ndarray
            NaN where the vertex is not ok or has too few neighbours.
        """
        if gradient_source(method) == "subset":
            return strain(self.gradient, kind)
        d = self.gradient.shape[-1]
        gradient = np.full(self.gradient.shape, np.nan)
        reference = self.points[:, -d:]
        ok = self.ok
        starts = self.points[:, 0]
        for start in np.unique(starts[np.isfinite(starts)]):
            # Only points given in one frame share a reference.
            rows = np.flatnonzero(starts == start)
            moved = self.position[rows][..., -d:] - reference[rows, None]
            gradient[rows] = window_gradients(
                reference[rows], moved, ok[rows], radius
            )
        return strain(gradient, kind)

    def track_ids(self) -> tuple[np.ndarray, dict[int, list[int]]]:
        """Track segment of each vertex, and how segments continue.

        A segment is a run of frames in which a point is not ``lost``.

        Returns
        -------
        ids : (N, T) ndarray of int
            Segment of each vertex, numbered from 0 in point then time
            order; -1 for lost vertices.
        graph : dict of int to list of int
            ``{segment: [the segment of the same point before it]}``, as
            napari's Tracks layer takes it.
        """
        kept = self.status != Status.LOST
        before = np.zeros_like(kept)
        before[:, 1:] = kept[:, :-1]
        starts = kept & ~before
        ids = np.cumsum(starts.ravel()).reshape(kept.shape) - 1
        ids[~kept] = -1
        point_of = np.nonzero(starts)[0]
        graph = {
            int(k): [int(k - 1)]
            for k in range(1, point_of.size)
            if point_of[k] == point_of[k - 1]
        }
        return ids, graph

    def to_napari(
        self,
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[int, list[int]]]:
        """Data, features and graph for ``viewer.add_tracks``.

        Returns
        -------
        data : (V, 2 + D) ndarray
            ``track_id, t, (z,) row, col`` per vertex that is not lost;
            no NaN.
        features : dict of str to (V,) ndarray
            ``point`` (the input row), ``score``, ``distinctiveness``,
            ``status`` (str), ``refreshed`` and ``gradient-i-j`` (as in
            :meth:`to_table`) per vertex.
        graph : dict of int to list of int
            The segment each segment continues (after the point was lost).
        """
        ids, graph = self.track_ids()
        kept = ids >= 0
        point, frame = np.nonzero(kept)
        data = np.column_stack([ids[kept], frame, self.position[kept]]).astype(
            np.float64
        )
        features = {
            "point": point,
            "score": self.score[kept],
            "distinctiveness": self.distinctiveness[kept],
            "status": np.array([str(s) for s in self.status[kept]]),
            "refreshed": self.refreshed[kept],
            **self._gradient_columns(self.gradient[kept]),
        }
        return data, features, graph

    def to_table(self) -> dict[str, np.ndarray]:
        """Columns of the result, one row per vertex (point, then time).

        ``track_id`` (-1 where lost), ``point``, ``t``, ``position-0 ...``
        (one per axis of a frame; NaN where lost), ``score``,
        ``distinctiveness``, ``status``, ``refreshed``, ``gradient-i-j``
        (``d u_i / d x_j``, see `gradient`; i and j number the axes as
        the ``position-*`` columns do, so in a (z, row, col) frame
        tracked in 2-D they run over 1 and 2);
        ``pandas.DataFrame(result.to_table())`` gives a data frame.
        """
        ids, _ = self.track_ids()
        count, frames = self.status.shape
        table = {
            "track_id": ids.ravel(),
            "point": np.repeat(np.arange(count), frames),
            "t": np.tile(np.arange(frames), count),
        }
        flat = self.position.reshape(count * frames, self.position.shape[-1])
        for axis in range(flat.shape[1]):
            table[f"position-{axis}"] = flat[:, axis]
        table["score"] = self.score.ravel()
        table["distinctiveness"] = self.distinctiveness.ravel()
        table["status"] = np.array([str(s) for s in self.status.ravel()])
        table["refreshed"] = self.refreshed.ravel()
        d = self.gradient.shape[-1]
        table.update(self._gradient_columns(self.gradient.reshape(-1, d, d)))
        return table

    def _gradient_columns(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """``gradient-i-j`` columns of the (V, D, D) gradients `values`;
        i and j number the axes of a frame."""
        d = values.shape[-1]
        first = self.position.shape[-1] - d
        return {
            f"gradient-{first + i}-{first + j}": values[:, i, j]
            for i in range(d)
            for j in range(d)
        }

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_table` as CSV, one row per vertex."""
        write_columns(path, self.to_table())

    def summaries(self) -> dict[str, np.ndarray]:
        """One row per track segment.

        Columns: ``track_id``, ``point``, ``first`` and ``last`` frame,
        ``length`` (vertices), ``mean_score``, ``refreshes`` (references
        renewed along it), ``displacement-0 ...`` (net, last minus first
        vertex, per axis) and ``distance`` (its length, pixels).
        """
        ids, _ = self.track_ids()
        count = int(ids.max(initial=-1)) + 1
        point, frame = np.nonzero(ids >= 0)
        segment = ids[point, frame]
        length = np.bincount(segment, minlength=count)
        # Vertices come in point then time order, and so do segment ids:
        # a segment's vertices are consecutive.
        starts = np.searchsorted(segment, np.arange(count))
        ends = starts + length - 1
        first, last = frame[starts], frame[ends]
        owner = point[starts]
        scores = self.score[point, frame]
        finite = np.isfinite(scores)
        total = np.bincount(
            segment[finite], weights=scores[finite], minlength=count
        )
        counted = np.bincount(segment[finite], minlength=count)
        refreshes = np.bincount(
            segment, weights=self.refreshed[point, frame], minlength=count
        )
        moved = self.position[owner, last] - self.position[owner, first]
        table = {
            "track_id": np.arange(count),
            "point": owner,
            "first": first,
            "last": last,
            "length": length,
            "mean_score": np.divide(
                total,
                counted,
                out=np.full(count, np.nan),
                where=counted > 0,
            ),
            "refreshes": refreshes.astype(np.int64),
        }
        for axis in range(moved.shape[1]):
            table[f"displacement-{axis}"] = moved[:, axis]
        table["distance"] = np.linalg.norm(moved, axis=1)
        return table
