"""Transform families: which exist in D dimensions, how many points and
parameters each needs, and what to say when the matches are too few.
"""

from __future__ import annotations

import numpy as np

from ._estimators import article, determines

__all__ = [
    "MODELS",
    "MODELS_BY_DIM",
    "TooFewMatches",
    "check_count",
    "parameters",
    "requirements",
]

MODELS = ("translation", "rigid", "similarity", "affine", "projective")
MODELS_BY_DIM = {2: MODELS, 3: ("translation", "rigid", "affine")}


class TooFewMatches(ValueError):
    """Too few usable matches for the model; `supported` names the
    simpler models they do determine, most general first."""

    def __init__(self, message: str, supported: tuple[str, ...]) -> None:
        super().__init__(message)
        self.supported = supported


def requirements(model: str, ndim: int) -> tuple[int, int]:
    """Minimum number of points and rank of the centred source points."""
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {MODELS}")
    if model not in MODELS_BY_DIM.get(ndim, ()):
        available = MODELS_BY_DIM.get(ndim, ())
        raise ValueError(
            f"model {model!r} is not available for {ndim}-D points; "
            f"{ndim}-D fits support {available}"
        )
    return {
        "translation": (1, 0),
        "rigid": (ndim, ndim - 1),
        "similarity": (ndim, ndim - 1),
        "affine": (ndim + 1, ndim),
        "projective": (4, ndim),
    }[model]


def parameters(model: str, ndim: int) -> int:
    """Degrees of freedom of a `model` transform in `ndim` dimensions."""
    rotations = ndim * (ndim - 1) // 2
    return {
        "translation": ndim,
        "rigid": ndim + rotations,
        "similarity": ndim + rotations + 1,
        "affine": ndim * (ndim + 1),
        "projective": ndim * (ndim + 2),
    }[model]


def check_count(
    model: str, src: np.ndarray, rows: int, *, ok_rows: bool
) -> None:
    """Raise :class:`TooFewMatches` unless `src` (N, D), the usable rows of
    `rows`, has enough points for `model`; the message names the simpler
    models they determine.

    `ok_rows` says that usable means ``ok`` (a MatchResult's rows).
    """
    ndim = src.shape[1]
    if len(src) >= requirements(model, ndim)[0]:
        return
    simpler = MODELS_BY_DIM[ndim][: MODELS_BY_DIM[ndim].index(model)]
    supported = tuple(
        candidate
        for candidate in reversed(simpler)
        if len(src) >= requirements(candidate, ndim)[0]
        and determines(candidate, src, requirements(candidate, ndim)[1])
    )
    # Any model fits a shift; name it only when nothing better fits.
    named = [m for m in supported if m != "translation"] or supported
    got = f"{len(src)} ok (of {rows})" if ok_rows else f"{len(src)}"
    if not ok_rows and rows > len(src):
        got += f" finite (of {rows})"
    need = requirements(model, ndim)[0]
    message = (
        f"{article(model)} {model} fit needs at least {need} matched "
        f"point{'s' if need > 1 else ''}, got {got}"
    )
    # Matches can be made again through a rough fit; bare points cannot.
    refine = ", or Refine through a rough fit" if ok_rows else ""
    if named:
        verb = "supports" if len(src) == 1 else "support"
        listed = ", ".join(named[:-1]) + " or " if len(named) > 1 else ""
        message += (
            f"; {len(src)} {verb} {article(named[0])} {listed}{named[-1]} "
            f"fit: try model={named[0]!r}{refine}"
        )
    elif ok_rows:
        message += "; Refine through a rough fit, or widen search_radius"
    raise TooFewMatches(message, supported)
