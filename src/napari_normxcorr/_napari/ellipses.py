"""Uncertainty ellipses of the matches, on demand: a Shapes layer.

Each match with a covariance gets the ellipse of ``SIGMAS`` standard
deviations around it (about 86 % of the positions a match could take, in
2-D), drawn in its status colour; an edge-only match shows a long thin
ellipse along its edge, capped at the search window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..matching._result import MatchResult
from .layers import convert, data_to_world
from .outputs import STATUS_COLORS, SUFFIXES, units_for
from .session import MatchSession

if TYPE_CHECKING:
    import napari

SIGMAS = 2.0
_NO_COLOR = (0.6, 0.6, 0.6, 1.0)


def ellipse_corners(
    result: MatchResult, cap: float, scale: float = 1.0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows with an ellipse, and its 4 corners (target pixels, all axes).

    Only the last two axes get an ellipse (a 3-D match shows its row-col
    section); semi-axes are SIGMAS standard deviations, at most `cap`,
    then times `scale` (sub-pixel ellipses are too small to see).
    """
    covariance = result.covariance
    finite = np.isfinite(covariance).all(axis=(1, 2)) & np.isfinite(
        result.matched
    ).all(axis=1)
    rows = np.flatnonzero(finite)
    corners = []
    for row in rows:
        values, vectors = np.linalg.eigh(covariance[row][-2:, -2:])
        axes = np.minimum(SIGMAS * np.sqrt(np.maximum(values, 0)), cap)
        axes = axes * scale
        # Bounding box of the ellipse, along its own axes.
        a, b = vectors[:, 1] * axes[1], vectors[:, 0] * axes[0]
        centre = result.matched[row]
        box = np.tile(centre, (4, 1))
        box[:, -2:] += np.array([a + b, a - b, -a - b, -a + b])
        corners.append(box)
    return rows, corners


class UncertaintyEllipses:
    """Keeps ``<points> uncertainty`` in step with the session, when
    `wanted()` says so; removes it otherwise."""

    def __init__(
        self,
        viewer: napari.Viewer,
        session: MatchSession,
        wanted: Callable[[], bool],
        scale: Callable[[], float] = lambda: 1.0,
    ):
        self._viewer = viewer
        self._session = session
        self._wanted = wanted
        self._scale = scale
        session.changed.connect(self.redraw)

    def _name(self) -> str | None:
        inputs = self._session.inputs
        if inputs is None:
            return None
        return inputs.points_layer.name + SUFFIXES["uncertainty"]

    def redraw(self, rows: object = None) -> None:
        """Draw the ellipses of the current result (or remove them)."""
        name, result = self._name(), self._session.result
        inputs = self._session.inputs
        if name is None or result is None or inputs is None:
            return
        if not self._wanted():
            if name in self._viewer.layers:
                self._viewer.layers.remove(name)
            return
        cap = float(max(inputs.options.search_radius))
        kept, corners = ellipse_corners(result, cap, self._scale())
        to_world = data_to_world(inputs.image_layer)
        shapes = [convert(box, to_world) for box in corners]
        colors = np.array(
            [STATUS_COLORS.get(result.status[r], _NO_COLOR) for r in kept]
        ).reshape(-1, 4)
        active = self._viewer.layers.selection.active
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        if shapes:
            # Rebuilt each time: a Shapes layer's data cannot change its
            # number of shapes and their colours in one step.
            self._viewer.add_shapes(
                shapes,
                name=name,
                shape_type="ellipse",
                edge_color=colors,
                face_color="transparent",
                edge_width=1.0,
                units=units_for(inputs.image_layer, len(shapes[0][0])),
            )
        if active is not None and active in self._viewer.layers:
            self._viewer.layers.selection.active = active
