"""The NCC surface under the selected track's vertex at the shown frame:
``<points> track surface``.

The surface at frame t is how t's vertex was found: the template around
the point's vertex in the frame it was tracked from (t - 1 after the frame
the point was given in, t + 1 before it) correlated over the search window
around the vertex at t, by `match_points` on those two frames with the
run's radii. It is computed for that one vertex when the selection, the
tracks or the frame change (a few ms). At the point's given frame nothing
was matched, and a lost vertex has no surface: the layer is hidden then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core._arrays import LazyArray
from ..matching._match import match_points
from ..matching._result import Status, Surface
from ..tracking._tracks import TrackResult
from .layers import convert, data_to_world, set_or_add, world_to_data
from .outputs import SUFFIXES, surface_placement, surface_style
from .track_session import TrackSession

if TYPE_CHECKING:
    import napari

SUFFIX = SUFFIXES["track surface"]


class Frame:
    """Frame `t` of a lazy (T, ...) stack, itself lazy: `match_points`
    reads only its windows (``stack[t]`` would read a zarr frame whole)."""

    def __init__(self, stack: LazyArray, t: int):
        self._stack = stack
        self._t = t
        self.shape = tuple(stack.shape[1:])
        self.ndim = len(self.shape)
        self.dtype = stack.dtype

    def __getitem__(self, index: Any) -> Any:
        rest = index if isinstance(index, tuple) else (index,)
        return self._stack[(self._t, *rest)]


def tracked_from(result: TrackResult, point: int, t: int) -> int | None:
    """The frame whose vertex the vertex of `point` at `t` was tracked
    from: the nearest one towards the point's given frame that is not
    lost (a point found again was searched for with its last good
    template). None at the given frame itself, or when `t` is lost."""
    given = int(np.rint(result.points[point, 0]))
    if t == given or result.status[point, t] == Status.LOST:
        return None
    step = 1 if t > given else -1
    for frame in range(t - step, given - step, -step):
        if result.status[point, frame] != Status.LOST:
            return frame
    return None


def vertex_surface(
    result: TrackResult,
    stack: LazyArray,
    point: int,
    t: int,
    keywords: dict[str, Any],
) -> Surface | None:
    """The NCC surface of the vertex of `point` at frame `t`, placed in
    the stack (its plane is ``(t,)``); None when it has none.

    `keywords` are the run's (`TrackRun.keywords`): its template and
    search radii and fft precision.
    """
    source = tracked_from(result, point, t)
    if source is None:
        return None
    found = match_points(
        Frame(stack, source),
        Frame(stack, t),
        result.position[point, source][None],
        image_points=result.position[point, t][None],
        template_radius=keywords["template_radius"],
        search_radius=keywords["search_radius"],
        fft_precision=keywords.get("fft_precision", "single"),
        # The surface is all we want: no refinement, no back-match.
        subpixel=False,
        check_consistency=False,
        max_neighbour_residual=np.inf,
        max_motion_gap=np.inf,
        keep_surfaces=True,
    )
    try:
        surface = found.surface(0)
    except ValueError:
        return None
    return Surface(surface.values, surface.origin, (t,))


def current_frame(
    viewer: napari.Viewer, layer: napari.layers.Image
) -> int | None:
    """The frame of `layer` (time first) that the viewer shows; None when
    the layer is gone (its axes may be too)."""
    if layer not in viewer.layers or viewer.dims.ndim < layer.ndim:
        return None
    world = np.asarray(viewer.dims.point[-layer.ndim :], dtype=float)
    return int(np.rint(convert(world[None], world_to_data(layer))[0, 0]))


def show_frame(
    viewer: napari.Viewer, layer: napari.layers.Image, t: int
) -> None:
    """Move the viewer's time slider to frame `t` of `layer`."""
    data = np.zeros((1, layer.ndim))
    data[0, 0] = t
    world = convert(data, data_to_world(layer))[0]
    axis = viewer.dims.ndim - layer.ndim
    viewer.dims.set_point(axis, float(world[0]))


@contextmanager
def keeping_active_layer(viewer: napari.Viewer) -> Iterator[None]:
    """An added layer does not take over the user's active layer."""
    selection = viewer.layers.selection
    active = selection.active
    yield
    if active is not None and active in viewer.layers:
        selection.active = active


class TrackSurface:
    """Draws ``<points> track surface`` for the selected track's vertex at
    the shown frame; hides it when there is none.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the layer goes.
    session : TrackSession
        The tracks and the selected point.
    frame : callable
        The frame the viewer shows (of the run's template).
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        session: TrackSession,
        frame: Callable[[], int | None],
    ):
        self._viewer = viewer
        self._session = session
        self._frame = frame
        # Whether we hid the layer (a user's hiding is theirs to undo).
        self._hidden = False
        session.changed.connect(self.draw)
        session.selected.connect(self.draw)

    @property
    def name(self) -> str | None:
        """The layer's name, once there is a run."""
        run = self._session.run
        return None if run is None else run.inputs.points_layer.name + SUFFIX

    def draw(self, *args: Any) -> None:
        """Show the surface of the selected vertex at the shown frame."""
        run, result = self._session.run, self._session.result
        point = self._session.point
        if run is None or result is None or point is None:
            self._hide()
            return
        t = self._frame()
        surface = None
        if t is not None and 0 <= t < result.status.shape[1]:
            surface = vertex_surface(
                result, run.inputs.template, point, t, run.keywords()
            )
        if surface is None:
            self._hide()
        else:
            self._show(surface, point)

    def _show(self, surface: Surface, point: int) -> None:

        assert self._session.run is not None and self.name is not None
        template = self._session.run.inputs.template_layer
        data, affine = surface_placement(surface, template)
        layers = self._viewer.layers
        new = self.name not in layers
        with keeping_active_layer(self._viewer):
            layer = set_or_add(
                self._viewer,
                self.name,
                "image",
                data,
                update=("affine",),
                affine=affine,
                **surface_style(),
            )
            if new and template in layers:
                # Under the tracks and vertices, which it would dim.
                layers.move(layers.index(layer), layers.index(template) + 1)
        layer.metadata["point"] = point
        layer.metadata["t"] = int(surface.plane[0])
        if self._hidden:
            layer.visible = True
            self._hidden = False

    def _hide(self) -> None:
        name = self.name
        if name is not None and name in self._viewer.layers:
            layer = self._viewer.layers[name]
            if layer.visible:
                layer.visible = False
                self._hidden = True
            layer.metadata["point"] = None
