"""Transforms fitted to point matches: the public fit and its models.

Everything here works in pixel coordinates in the arrays' axis order
(row, col[, plane]), like napari's ``affine``; nothing is ever converted
to (x, y). The least-squares fits are in ``_estimators``, the robust
estimation around them in ``_robust``, and resampling an image through a
fit in ``_warp``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ..core._validate import number
from ..matching._result import MatchResult, Status
from ._estimators import (
    apply_matrix,
    check_geometry,
    least_squares,
    residual_distances,
)
from ._models import MODELS, check_count, parameters, requirements
from ._robust import default_threshold, robust_inliers
from ._transform_files import (
    FORMAT,
    VERSION,
    json_rows,
    read_record,
    write_record,
)

__all__ = ["MODELS", "TransformFit", "fit_transform", "requirements"]

_MATCH_FIELDS = ("points", "matched", "status")


@dataclass(frozen=True, eq=False)
class TransformFit:
    """A transform from template pixels to target pixels, fitted to matches.

    Attributes
    ----------
    model : str
        One of :data:`MODELS`.
    matrix : (D+1, D+1) ndarray
        Homogeneous matrix mapping template pixel coordinates (row, col[,
        plane]) to target pixel coordinates, as napari's ``affine``.
    inverse : (D+1, D+1) ndarray
        Inverse of `matrix`: target pixels to template pixels.
    inliers : (N,) ndarray of bool
        Rows that support the fit; False for rows left out of it.
    residuals : (N,) ndarray
        Distance in pixels between each transformed point and its match;
        NaN for rows without a finite match.
    rms : float
        Root mean square residual of the inliers, in pixels; NaN for an
        `exact` fit, or without inliers.
    threshold : float
        Inlier threshold on the residuals, in pixels.
    matches : MatchResult or None
        The matches the fit was refined from, flagged by it (see
        :meth:`flag`), when it comes from :func:`register`; else None.
    exact : bool
        True when the fit was made from exactly as many coordinates as the
        model has parameters (an affine from 3 points in 2-D, a similarity
        from 2): it passes through them whatever their errors, so `rms` is
        NaN rather than a misleading 0.
    """

    model: str
    matrix: np.ndarray
    inverse: np.ndarray
    inliers: np.ndarray
    residuals: np.ndarray
    rms: float
    threshold: float
    matches: MatchResult | None = None
    exact: bool = False

    def __repr__(self) -> str:
        return f"<TransformFit {self.summary}>"

    @property
    def ndim(self) -> int:
        """Number of axes the transform maps (D)."""
        return len(self.matrix) - 1

    @property
    def summary(self) -> str:
        """One line: model, inliers of all rows, and the RMS residual or
        ``exact (N points, no residual)``."""
        count = int(np.count_nonzero(self.inliers))
        head = f"{self.model}: {count}/{len(self.inliers)} inliers"
        if self.exact:
            return f"{head}, exact ({count} points, no residual)"
        if np.isnan(self.rms):
            return head
        return f"{head}, RMS {self.rms:.3f} px"

    def __call__(self, points: npt.ArrayLike) -> np.ndarray:
        """Map (..., D) template pixel coordinates to target pixels."""
        return apply_matrix(self.matrix, np.asarray(points, dtype=float))

    def flag(self, result: MatchResult) -> MatchResult:
        """`result` with this fit's residual and inlier columns, and status
        ``transform outlier`` for its ``ok`` rows off the model.

        The fit must have been made from `result` (one row per row).
        """
        if len(result) != len(self.residuals):
            raise ValueError(
                f"the fit has {len(self.residuals)} rows but the result "
                f"{len(result)}; flag the result the fit was made from."
            )
        # A copy: later edits of one result never show in the other.
        flagged = result.take(np.arange(len(result)))
        flagged.transform_residual = self.residuals.copy()
        flagged.transform_inlier = self.inliers.copy()
        status = flagged.status.copy()
        status[(status == Status.OK) & ~self.inliers] = (
            Status.TRANSFORM_OUTLIER
        )
        flagged.status = status
        return flagged

    def to_dict(self) -> dict[str, Any]:
        """The fit as plain JSON values, as :meth:`to_json` writes them.

        Keys ``format``, ``version``, ``model``, ``ndim``, ``matrix``,
        ``inverse``, ``inliers``, ``residuals``, ``rms``, ``threshold`` and
        ``exact``; with `matches`, also their ``points`` (template pixels),
        ``matched`` (target pixels) and ``status``. NaN becomes None.
        """
        record: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "ndim": self.ndim,
            "matrix": self.matrix.tolist(),
            "inverse": self.inverse.tolist(),
            "inliers": self.inliers.tolist(),
            "residuals": json_rows(self.residuals),
            "rms": None if np.isnan(self.rms) else float(self.rms),
            "threshold": float(self.threshold),
            "exact": bool(self.exact),
        }
        if self.matches is not None:
            record["points"] = json_rows(self.matches.points)
            record["matched"] = json_rows(self.matches.matched)
            record["status"] = [str(s) for s in self.matches.status]
        return record

    def to_json(self, path: str | Path) -> None:
        """Write the fit to `path` as JSON (see :meth:`to_dict`), floats
        exact to the bit; :meth:`from_json` reads it back."""
        write_record(self.to_dict(), path)

    @classmethod
    def from_json(cls, path: str | Path) -> TransformFit:
        """The fit in a file :meth:`to_json` or ``register -o`` wrote.

        Parameters
        ----------
        path : str or Path
            The JSON file.

        Returns
        -------
        TransformFit
            The fit, equal to the one written (matrices to the bit);
            `matches` is None: the points and matches stay in the file.

        Raises
        ------
        ValueError
            Naming `path`: not JSON, not a transform file, another
            version, a missing key, a model unknown or unavailable in its
            dimensions, or a matrix of the wrong shape or not finite.
        """
        fields = read_record(path)
        try:
            requirements(fields["model"], len(fields["matrix"]) - 1)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        return cls(**fields)


def _point_pairs(
    source: npt.ArrayLike | MatchResult, target: npt.ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source and target (N, D) float arrays and the rows allowed in."""
    if target is None:
        if not all(hasattr(source, a) for a in _MATCH_FIELDS):
            raise ValueError(
                "target is required unless source is a MatchResult"
            )
        # A MatchResult, or anything with its columns.
        result = cast(MatchResult, source)
        src = np.asarray(result.points, dtype=float)
        dst = np.asarray(result.matched, dtype=float)
        allowed = np.array([str(s) == "ok" for s in result.status], bool)
        # Leading plane coordinates (a stack) pass through the matching:
        # the fit is over the matched axes, those of the gradient.
        matched = np.shape(getattr(result, "gradient", ()))
        if len(matched) == 3 and 0 < matched[-1] < src.shape[-1]:
            src, dst = src[:, -matched[-1] :], dst[:, -matched[-1] :]
    else:
        # Points: a MatchResult comes without `target`.
        src = np.asarray(cast(npt.ArrayLike, source), dtype=float)
        dst = np.asarray(target, dtype=float)
        allowed = np.ones(len(src), dtype=bool)
    if src.ndim != 2 or src.shape != dst.shape:
        raise ValueError(
            f"source and target must be (N, D) arrays of the same shape, "
            f"got {src.shape} and {dst.shape}"
        )
    return src, dst, allowed


def checked_threshold(threshold: object) -> float | None:
    """`threshold` as a float > 0 and finite, or None; else raise."""
    if threshold is None:
        return None
    value = number("threshold", threshold)
    if not 0 < value < np.inf:
        raise ValueError(
            f"threshold must be positive and finite, got {threshold!r}"
        )
    return value


def fit_transform(
    source: npt.ArrayLike | MatchResult,
    target: npt.ArrayLike | None = None,
    *,
    model: str = "affine",
    robust: bool = True,
    threshold: float | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> TransformFit:
    """Fit a transform mapping template points onto their matches.

    Parameters
    ----------
    source : (N, D) array_like or MatchResult
        Points in template pixels (row, col[, plane]), with `target` their
        matches in target pixels. Or a :class:`MatchResult`: its ``points``
        and ``matched``; rows whose ``status`` is not ``"ok"`` stay out of
        the fit but still get a residual. Leading plane coordinates of a
        stack's result are left out: the fit is over its matched axes.
    target : (N, D) array_like, optional
        Matched points; required unless `source` is a MatchResult.
    model : {'translation', 'rigid', 'similarity', 'affine', 'projective'}
        Transform family; in 3-D only translation, rigid and affine.
    robust : bool, optional
        Fit by RANSAC and a least-squares refit on the inliers, repeated
        until they no longer change. If False, one least-squares fit on all
        usable rows; `inliers` then only flags rows within `threshold`.
    threshold : float, optional
        Residual in pixels up to which a match is an inlier. By default,
        derived from the data (see Notes).
    random_state : int or numpy.random.Generator, optional
        Seed of the random sampling, for results that repeat.

    Returns
    -------
    TransformFit
        Matrix, inverse, inliers and residuals of the fit; ``exact`` (and
        ``rms`` NaN) when the points just determine the model.

    Raises
    ------
    ValueError
        For an unknown model or one unavailable in D dimensions, too few
        usable matches (:class:`TooFewMatches`, which names the simpler
        models they fit), points that span too few directions
        (coincident, collinear, coplanar; projective: no four with no
        three on a line), a threshold that is not a positive number, or
        (robust) when no transform is supported by more matches than
        chance would give.

    Notes
    -----
    The default threshold assumes that at least half of the matches are
    good: a least-median-of-squares fit [2]_ (for ``robust=False``, the
    least-squares fit) gives the median residual, hence a first estimate
    of the matches' scatter sigma per axis, refined on the residuals it
    accepts; the threshold accepts 99.9 % of matches that scatter like
    that (3.7 sigma in 2-D, 4.0 sigma in 3-D), never less than 0.5 px.
    With more outliers than that, pass `threshold`.
    The refit of the consensus set follows LO-RANSAC [1]_. A consensus
    that unrelated matches would reach with over 1 % odds is refused
    (the non-randomness test of PROSAC [3]_).

    References
    ----------
    .. [1] Chum, Matas and Kittler, "Locally Optimized RANSAC", DAGM 2003.
    .. [2] Rousseeuw, "Least Median of Squares Regression", JASA 79, 1984.
    .. [3] Chum and Matas, "Matching with PROSAC - Progressive Sample
       Consensus", CVPR 2005.
    """
    src, dst, allowed = _point_pairs(source, target)
    need = requirements(model, src.shape[1])
    finite = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
    usable = allowed & finite
    threshold = checked_threshold(threshold)
    check_count(model, src[usable], len(src), ok_rows=target is None)
    check_geometry(model, src[usable], need)
    rng = np.random.default_rng(random_state)
    fit_src, fit_dst = src[usable], dst[usable]
    if robust:
        chosen, threshold = robust_inliers(
            model, fit_src, fit_dst, threshold, need, rng
        )
        fit_src, fit_dst = fit_src[chosen], fit_dst[chosen]
    matrix = least_squares(model, fit_src, fit_dst)
    fit = _summary(model, matrix, src, dst, usable, threshold, need[0])
    # As many coordinates as parameters: the fit passes through them all.
    if fit_src.size <= parameters(model, src.shape[1]):
        return replace(fit, rms=np.nan, exact=True)
    return fit


def _summary(
    model: str,
    matrix: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    usable: np.ndarray,
    threshold: float | None,
    min_points: int,
) -> TransformFit:
    """The :class:`TransformFit` of `matrix` over all rows of src and dst.

    Parameters
    ----------
    model : str
        Transform family of `matrix`.
    matrix : (D+1, D+1) ndarray
        The fitted matrix.
    src, dst : (N, D) ndarray
        All points and matches, finite or not.
    usable : (N,) ndarray of bool
        Rows allowed into the fit.
    threshold : float or None
        Inlier threshold in pixels; None derives it from the residuals of
        the usable rows.
    min_points : int
        Points in a minimal sample of `model`.

    Returns
    -------
    TransformFit
        Matrix, inverse, inliers and residuals of the fit.
    """
    finite = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
    # Rows left out of the fit still get a residual, if they have one.
    residuals = np.full(len(src), np.nan)
    residuals[finite] = residual_distances(matrix, src[finite], dst[finite])
    if threshold is None:
        threshold = default_threshold(
            residuals[usable], src.shape[1], min_points
        )
    inliers = usable & (residuals <= threshold)
    good = residuals[inliers]
    inverse = np.linalg.inv(matrix)
    return TransformFit(
        model=model,
        matrix=matrix,
        inverse=inverse / inverse[-1, -1],
        inliers=inliers,
        residuals=residuals,
        rms=float(np.sqrt(np.mean(good**2))) if len(good) else np.nan,
        threshold=float(threshold),
    )
