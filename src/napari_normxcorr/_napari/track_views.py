"""The tracking session drawn into the viewer: the tracks, their vertices
and the drift-corrected stack.

Named after the points layer: ``<points> tracks`` (napari Tracks coloured
by score or status) and ``<points> tracked`` (a Points layer with every
vertex that is not lost, coloured by status: napari shows those of the
current frame). Both are placed like the template layer, with their data
in its pixels, so that a moved vertex is a template pixel at once.
Selecting a vertex selects its track in the session. The drift-corrected
view is ``<template> drift corrected``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal

from ..matching._result import Status
from ..tracking._drift import estimate_drift
from ..tracking._tracks import TrackResult
from .outputs import STATUS_COLORS, SUFFIXES
from .overlay import placement
from .track_session import TrackSession

if TYPE_CHECKING:
    import napari

TRACK_COLORINGS = ("score", "status")
# Statuses a vertex can have, each with its colour; others are grey.
_OTHER_COLOR = (0.6, 0.6, 0.6, 1.0)
_STATUSES = list(STATUS_COLORS)
# Score colours: red up to the default min score, yellow, green at 1.
_SCORE_COLORS = {
    "colors": [
        [1.0, 0.2, 0.2, 1.0],
        [1.0, 0.2, 0.2, 1.0],
        [1.0, 0.8, 0.1, 1.0],
        [0.2, 0.9, 0.3, 1.0],
    ],
    "controls": [0.0, 0.5, 0.8, 1.0],
    "name": "track score (red 0.5, yellow 0.8, green 1)",
}
# Past vertices drawn as a tail, at most.
_TAIL = 30


def status_code(status: np.ndarray) -> np.ndarray:
    """Each status as a value in [0, 1] for the status colormap."""
    index = [
        _STATUSES.index(s) if s in STATUS_COLORS else len(_STATUSES)
        for s in status
    ]
    return (np.asarray(index, dtype=float) + 0.5) / (len(_STATUSES) + 1)


def track_colormaps() -> dict[str, Any]:
    """The Tracks layer's colormaps: by score and by status."""
    from napari.utils import Colormap

    colors = [*STATUS_COLORS.values(), _OTHER_COLOR]
    status = Colormap(
        colors=colors,
        controls=np.linspace(0.0, 1.0, len(colors) + 1),
        interpolation="zero",
        name="track status",
    )
    return {"score": Colormap(**_SCORE_COLORS), "status_code": status}


def tracked_vertices(
    result: TrackResult,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Every vertex that is not lost: (t, position) in template pixels,
    its features (point, t, score, status) and its colour by status."""
    point, frame = np.nonzero(result.status != Status.LOST)
    status = result.status[point, frame]
    data = np.column_stack([frame, result.position[point, frame]])
    features = {
        "point": point,
        "t": frame,
        "score": result.score[point, frame],
        "status": np.array([str(s) for s in status]),
    }
    colors = np.array(
        [STATUS_COLORS.get(s, _OTHER_COLOR) for s in status]
    ).reshape(-1, 4)
    return data, features, colors


class TrackLayers:
    """Draws the tracking session's result and reports moved vertices.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the layers go.
    session : TrackSession
        The model to draw; its changes redraw the layers.
    coloring : callable
        How to colour the tracks (one of TRACK_COLORINGS).
    want_drift : callable
        Whether the drift-corrected view is wanted.

    Signals
    -------
    vertex_moved : (point, t, position)
        The user moved the vertex of `point` in frame `t` to `position`
        (all axes of a frame, template pixels).
    """

    vertex_moved = Signal(int, int, object)

    def __init__(
        self,
        viewer: napari.Viewer,
        session: TrackSession,
        coloring: Callable[[], str],
        want_drift: Callable[[], bool],
    ):
        self._viewer = viewer
        self._session = session
        self._coloring = coloring
        self._want_drift = want_drift
        self._tracked: napari.layers.Points | None = None
        self._drawing = False
        session.changed.connect(self._on_changed)

    def _name(self, output: str) -> str:
        assert self._session.run is not None
        return self._session.run.inputs.points_layer.name + SUFFIXES[output]

    @contextmanager
    def _keeping_active_layer(self) -> Iterator[None]:
        """Drawn layers do not take over the user's active layer."""
        selection = self._viewer.layers.selection
        active = selection.active
        self._drawing = True
        try:
            yield
        finally:
            self._drawing = False
        if active is not None and active in self._viewer.layers:
            selection.active = active

    def _on_changed(self, points: list[int] | None = None) -> None:
        result = self._session.result
        if result is None:
            return
        with self._keeping_active_layer():
            self._draw_tracks(result)
            self._draw_tracked(result)
            if self._want_drift():
                self.draw_drift()

    def _placement(self) -> dict[str, Any]:
        assert self._session.run is not None
        return placement(self._session.run.inputs.template_layer)

    def _draw_tracks(self, result: TrackResult) -> None:
        """Add or update the Tracks layer (none when nothing was found)."""
        import napari

        data, features, graph = result.to_napari()
        name = self._name("tracks")
        layers = self._viewer.layers
        if not len(data):
            if name in layers:
                layers.remove(name)
            return
        features["status_code"] = status_code(features["status"])
        coloring = self.color_key()
        layer = layers[name] if name in layers else None
        if isinstance(layer, napari.layers.Tracks):
            # The data setter drops features and graph: set them again
            # (colouring by track_id meanwhile, which it keeps).
            layer.color_by = "track_id"
            layer.data = data
            layer.features = features
            layer.graph = graph
            layer.color_by = coloring
            return
        if layer is not None:
            layers.remove(layer)
        length = int(np.ptp(data[:, 1])) + 1
        self._viewer.add_tracks(
            data,
            features=features,
            graph=graph,
            name=name,
            colormaps_dict=track_colormaps(),
            color_by=coloring,
            tail_length=min(length, _TAIL),
            tail_width=3,
            **self._placement(),
        )

    def color_key(self) -> str:
        """The Tracks feature that the chosen colouring colours by."""
        return "score" if self._coloring() == "score" else "status_code"

    def recolor(self) -> None:
        """Colour the tracks as now chosen."""
        if self._session.run is None:
            return
        name = self._name("tracks")
        if name in self._viewer.layers:
            self._viewer.layers[name].color_by = self.color_key()

    def _draw_tracked(self, result: TrackResult) -> None:
        """Add or update the Points layer of every vertex not lost."""
        data, features, colors = tracked_vertices(result)
        name = self._name("tracked")
        layers = self._viewer.layers
        layer = layers[name] if name in layers else None
        if layer is None or layer.ndim != data.shape[1]:
            if layer is not None:
                layers.remove(layer)
            layer = self._add_tracked(name, data, features, colors)
        else:
            layer.data = data
            layer.features = features
            layer.face_color = colors
        self._follow(layer)

    def _add_tracked(
        self,
        name: str,
        data: np.ndarray,
        features: dict[str, np.ndarray],
        colors: np.ndarray,
    ) -> napari.layers.Points:
        assert self._session.run is not None
        size = np.median(self._session.run.inputs.points_layer.size)
        return self._viewer.add_points(
            data,
            name=name,
            features=features,
            face_color=colors,
            border_color="white",
            border_width=0.1,
            size=float(size) if np.isfinite(size) else 8.0,
            **self._placement(),
        )

    def _follow(self, layer: napari.layers.Points) -> None:
        """Watch the vertices the user moves or selects in `layer`."""
        if self._tracked is not layer:
            if self._tracked is not None:
                self._tracked.events.data.disconnect(self._on_edit)
                self._tracked.selected_data.events.items_changed.disconnect(
                    self._on_picked
                )
            layer.events.data.connect(self._on_edit)
            layer.selected_data.events.items_changed.connect(self._on_picked)
            self._tracked = layer

    def _on_picked(self, event: Any = None) -> None:
        """The user selected vertices: the first one's track is selected.
        An emptied selection keeps it (a click beside the vertices, or
        redrawn data, should not close the vertex table)."""
        layer = self._tracked
        if self._drawing or layer is None or not layer.selected_data:
            return
        index = min(layer.selected_data)
        if index < len(layer.data):
            self._session.select(int(layer.features["point"].iloc[index]))

    def _on_edit(self, event: Any) -> None:
        """A moved vertex is reported; other edits are put back (the
        vertices are the tracks': only moving them corrects a track)."""
        from napari.utils.notifications import show_info

        action = str(getattr(event, "action", ""))
        layer, result = self._tracked, self._session.result
        if self._drawing or layer is None or result is None:
            return
        if action in ("added", "removed"):
            show_info(
                "Move a tracked point to correct its track; adding or "
                "deleting tracked points is not supported."
            )
            with self._keeping_active_layer():
                self._draw_tracked(result)
        elif action == "changed":
            self._report_moves(layer, getattr(event, "data_indices", ()))

    def _report_moves(self, layer: napari.layers.Points, indices: Any) -> None:
        """Report the vertices of `indices` that are not where their
        track has them (data set as a whole says every index changed)."""
        result = self._session.result
        assert result is not None
        points = layer.features["point"].to_numpy()
        frames = layer.features["t"].to_numpy()
        for index in indices:
            if not 0 <= index < len(points):
                continue
            point, t = int(points[index]), int(frames[index])
            position = np.array(layer.data[index][1:], dtype=float)
            if not np.array_equal(position, result.position[point, t]):
                self.vertex_moved.emit(point, t, position)

    def draw_drift(self) -> None:
        """Add or update ``<template> drift corrected`` (a lazy view)."""
        run, result = self._session.run, self._session.result
        if run is None or result is None:
            return
        template = run.inputs.template_layer
        corrected = estimate_drift(result).corrected
        name = template.name + SUFFIXES["drift corrected"]
        layers = self._viewer.layers
        if name in layers:
            layers[name].data = corrected
            return
        active = layers.selection.active
        added = self._viewer.add_image(
            corrected,
            name=name,
            colormap=template.colormap,
            # The template's intensities: no pass over a lazy array.
            contrast_limits=template.contrast_limits,
            # Over the template, see-through, under the points and tracks.
            opacity=0.5,
            **self._placement(),
        )
        if template in layers:
            layers.move(layers.index(added), layers.index(template) + 1)
        if active is not None and active in layers:
            layers.selection.active = active

    def remove_drift(self) -> None:
        """Take the drift-corrected view away."""
        run = self._session.run
        if run is None:
            return
        name = run.inputs.template_layer.name + SUFFIXES["drift corrected"]
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
