"""The template and the target side by side on one canvas, with a line
from each point to its match.

The target is shown by a second Image layer on the same data, moved in
the world to the right of the template (its data-to-world map composed
with a shift); the target and the outputs drawn over it are hidden
meanwhile. No input layer is changed but for its visibility, which comes
back with the view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..matching._result import MatchResult
from .layers import convert, data_to_world
from .legend import FAILED_COLOR, STATUS_COLORS
from .overlay import placement
from .session import RunInputs

if TYPE_CHECKING:
    import napari

# The gap between the two images, as a share of the template's width.
GAP = 0.05
COPY_SUFFIX = " (side by side)"
LINES = "pairs (side by side)"


class SideBySide:
    """Shows a run's template left and target right, with its pairs."""

    def __init__(self, viewer: napari.Viewer):
        self._viewer = viewer
        self._added: list[Any] = []
        self._hidden: list[Any] = []

    def show(self, inputs: RunInputs, result: MatchResult | None) -> None:
        """The target (copied, moved right of the template) and lines from
        each point of `result` to its match; the target side hidden."""
        self.restore()
        template, target = inputs.template_layer, inputs.image_layer
        shift = _shift(template, target)
        self._added.append(self._moved_copy(target, shift))
        if result is not None:
            lines = self._lines(inputs, result, shift)
            if lines is not None:
                self._added.append(lines)
        names = {inputs.points_layer.name + s for s in _TARGET_SIDE}
        for layer in self._viewer.layers:
            hide = layer == target or layer.name in names
            if hide and layer.visible and layer not in self._added:
                layer.visible = False
                self._hidden.append(layer)
        self._viewer.reset_view()

    def restore(self) -> None:
        """The view as it was: the added layers gone, the hidden shown."""
        layers = self._viewer.layers
        for layer in self._added:
            if layer in layers:
                layers.remove(layer)
        for layer in self._hidden:
            if layer in layers:
                layer.visible = True
        self._added, self._hidden = [], []

    @property
    def showing(self) -> bool:
        """Whether the side-by-side layers are in the viewer."""
        return bool(self._added)

    def _moved_copy(self, target: Any, shift: np.ndarray) -> Any:
        style = placement(target)
        style["affine"] = _shifted(np.asarray(style["affine"]), shift)
        kwargs = {
            "name": target.name + COPY_SUFFIX,
            "rgb": target.rgb,
            "colormap": target.colormap.name,
            "contrast_limits": target.contrast_limits,
            **style,
        }
        if target.rgb:
            kwargs.pop("colormap")
        return self._viewer.add_image(target.data, **kwargs)

    def _lines(
        self, inputs: RunInputs, result: MatchResult, shift: np.ndarray
    ) -> Any:
        """A Shapes layer of lines from each point to its match, in the
        colour of its status; None without a match to draw."""
        template, target = inputs.template_layer, inputs.image_layer
        kept = np.flatnonzero(np.isfinite(result.matched).all(axis=1))
        if kept.size == 0:
            return None
        start = _world(template, result.points[kept])
        end = _world(target, result.matched[kept]) + shift
        colours = [
            STATUS_COLORS.get(result.status[k], FAILED_COLOR) for k in kept
        ]
        return self._viewer.add_shapes(
            list(np.stack([start, end], axis=1)),
            shape_type="line",
            edge_color=colours,
            edge_width=max(_width(template) / 400, 1e-9),
            name=LINES,
        )


# The outputs drawn in the target's world, hidden with it.
_TARGET_SIDE = (
    " matched",
    " displacement",
    " NCC surface",
    " peaks",
    " uncertainty",
    " NCC height field",
)


def _world(layer: Any, points: np.ndarray) -> np.ndarray:
    """`points` (N, d) in the last d pixel axes of `layer`, in its world
    (N, layer.ndim): leading axes at 0."""
    full = np.zeros((len(points), layer.ndim))
    full[:, -points.shape[1] :] = points
    return convert(full, data_to_world(layer))


def _width(layer: Any) -> float:
    """The extent of `layer` along the last world axis."""
    low, high = np.asarray(layer.extent.world, dtype=float)
    return float(high[-1] - low[-1])


def _shift(template: Any, target: Any) -> np.ndarray:
    """How far to move the target in the world: its top left corner to
    the template's top right one, a gap apart (other axes aligned)."""
    low_t, high_t = np.asarray(template.extent.world, dtype=float)
    low_i, _ = np.asarray(target.extent.world, dtype=float)
    shift = low_t - low_i
    shift[-1] = high_t[-1] + GAP * (high_t[-1] - low_t[-1]) - low_i[-1]
    return shift


def _shifted(affine: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The homogeneous `affine` followed by a world translation."""
    moved = affine.copy()
    moved[: len(shift), -1] += shift
    return moved
