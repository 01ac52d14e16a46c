"""The output layers of a run, drawn from the session as it changes.

Named after the points layer: ``<points> matched`` (scored points coloured
by status), ``<points> displacement`` (vectors), ``<points> NCC surface``
(the surface of the shown point, under its match), ``<points> peaks`` (its
best and second-best peak) and, on demand, ``<points> NCC height field``
and the dense field's ``<points> field row`` (``col``, ``magnitude``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core._peaks import argmax_index, second_peak
from ..matching._result import MatchResult, Surface
from .layers import (
    Later,
    convert,
    data_to_world,
    keeping_active,
    reconnect,
    set_or_add,
)
from .looks import (  # noqa: F401  (re-exported: older imports)
    MAGNITUDE_COLORMAP,
    NCC_COLORMAP,
    STATUS_COLORS,
    VECTOR_COLORINGS,
    features_of,
    layer_ndim,
    magnitude_limits,
    magnitudes,
    pixel_size,
    status_colors,
    surface_style,
    units_for,
    vector_colors,
    world_size,
)
from .session import MatchSession, RunInputs
from .steps import now

if TYPE_CHECKING:
    import napari

# Matched points beyond this many get no score labels (clutter, slow).
_MAX_LABELS = 100
SUFFIXES = {
    "matched": " matched",
    "surface": " NCC surface",
    "displacement": " displacement",
    "uncertainty": " uncertainty",
    "peaks": " peaks",
    "height field": " NCC height field",
    "field row": " field row",
    "field col": " field col",
    "field z": " field z",
    "field magnitude": " field magnitude",
    "tracks": " tracks",
    "tracked": " tracked",
    "drift corrected": " drift corrected",
    "track surface": " track surface",
}


def is_output(layer: napari.layers.Layer) -> bool:
    """Whether `layer` looks like one of our outputs (never an input)."""
    return layer.name.endswith(tuple(SUFFIXES.values()))


def matched_world(
    result: MatchResult,
    image_layer: napari.layers.Image,
    points_world: np.ndarray,
) -> np.ndarray:
    """World positions of the matches; unmatched rows stay at the point."""
    world = convert(result.matched, data_to_world(image_layer))
    missing = ~np.isfinite(world).all(axis=1)
    world[missing] = points_world[missing]
    return world


def surface_placement(
    surface: Surface, image_layer: napari.layers.Image
) -> tuple[np.ndarray, np.ndarray]:
    """Data of a surface layer and its affine in the target's world.

    The surface element q scores the match at target data position
    ``origin + q``; leading plane coordinates make it a one-plane stack,
    so it shows in its own time point or slice only.
    """
    values = surface.values
    plane = np.asarray(surface.plane, dtype=float)
    data = values.reshape((1,) * plane.size + values.shape)
    start = np.concatenate([plane, surface.origin])
    matrix, offset = data_to_world(image_layer)
    affine = np.eye(len(start) + 1)
    affine[:-1, :-1] = matrix
    affine[:-1, -1] = matrix @ start + offset
    return data, affine


def height_field(
    surface: Surface, image_layer: napari.layers.Image, height: float = 20.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mesh of a 2-D surface with the NCC as height (in world units).

    Returns vertices (height, then the world coordinates of each surface
    pixel), triangle faces and the NCC values for colouring.
    """
    values = surface.values
    if values.ndim != 2:
        raise ValueError("a height field needs a 2-D surface")
    grid = np.indices(values.shape).reshape(2, -1).T.astype(float)
    plane = np.broadcast_to(
        np.asarray(surface.plane, float), (len(grid), len(surface.plane))
    )
    data = np.concatenate([plane, surface.origin + grid], axis=1)
    world = convert(data, data_to_world(image_layer))
    vertices = np.c_[height * values.ravel(), world[:, -2:]]
    rows, cols = values.shape
    corner = np.arange(rows * cols).reshape(rows, cols)[:-1, :-1].ravel()
    faces = np.concatenate(
        [
            np.c_[corner, corner + 1, corner + cols],
            np.c_[corner + 1, corner + cols + 1, corner + cols],
        ]
    )
    return vertices, faces, values.ravel()


class OutputLayers:
    """Draws the session's result into the viewer and keeps it in step.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the output layers go.
    session : MatchSession
        The model to draw; its changes redraw the layers.
    want_height_field : callable
        Whether the user asked for the 3-D height field too.
    vector_coloring : callable, optional
        How to colour the displacement vectors (one of VECTOR_COLORINGS).
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        session: MatchSession,
        want_height_field: Callable[[], bool],
        vector_coloring: Callable[[], str] = lambda: "plain",
    ):
        self._viewer = viewer
        self._session = session
        self._want_height_field = want_height_field
        self._vector_coloring = vector_coloring
        self._matched: napari.layers.Points | None = None
        self._syncing = False
        # How drawing steps run: at once, or queued by the widget (`now`
        # or `Steps.add`), so that one callback never draws everything;
        # with `later`, new layers are shown and filled layers restyled on
        # a later turn (`layers.set_or_add`).
        self.defer: Later = now
        self.later: Later | None = None
        # Vectors drawn this many times their length (few-pixel ones).
        self.vector_length: Callable[[], float] = lambda: 1.0
        self.shown: int | None = None
        session.changed.connect(self._on_changed)
        session.shown.connect(self._on_shown)
        session.selected.connect(self._on_selected)

    @property
    def _inputs(self) -> RunInputs:
        """The inputs of the result being drawn (there is one by then)."""
        inputs = self._session.inputs
        assert inputs is not None
        return inputs

    def _set(
        self, output: str, kind: str, data: Any, **kwargs: Any
    ) -> napari.layers.Layer:
        """Update or add the `output` layer (a key of SUFFIXES), in the
        physical units of the target image."""
        name = self._inputs.points_layer.name + SUFFIXES[output]
        ndim = layer_ndim(kind, data)
        kwargs["units"] = units_for(self._inputs.image_layer, ndim)
        return set_or_add(
            self._viewer, name, kind, data, later=self.later, **kwargs
        )

    def remove_height_field(self) -> None:
        """Take the height field away (its checkbox was turned off)."""
        inputs = self._session.inputs
        if inputs is None:
            return
        name = inputs.points_layer.name + SUFFIXES["height field"]
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)

    def keeping_active_layer(self) -> AbstractContextManager[None]:
        """Added output layers do not take over the user's active layer
        (`layers.keeping_active`)."""
        return keeping_active(self._viewer)

    def _on_changed(self, rows: list[int] | None = None) -> None:
        # Where drawing is batched (a full run), a layer per turn.
        self.defer(partial(self._keeping_active, self._draw_matches))
        self.defer(partial(self._keeping_active, self._draw_vectors))

    def _keeping_active(self, draw: Callable[[], Any]) -> None:
        """`draw`, unless the result is gone by now."""
        if self._session.result is None or self._session.is_closed:
            return
        with self.keeping_active_layer():
            draw()

    def empty_steps(self) -> list[Callable[[], Any]]:
        """Steps adding the matched points and the vectors layers, empty,
        when they are missing.

        napari takes ~0.1 s to add a layer of 16 000 points or vectors
        (its controls, its visual, thumbnails) and the canvas repaints
        them after it; an empty layer is added in a few tens of ms, and
        the data then go in like a re-run's, in later turns.
        """
        name = self._inputs.points_layer.name
        ndim = self._session.world.shape[1]
        labels = len(self._session.world) <= _MAX_LABELS
        adds = {
            "matched": partial(self._add_empty_matches, ndim, labels),
            "displacement": partial(self._add_empty_vectors, ndim),
        }
        return [
            partial(self._keeping_active, add)
            for output, add in adds.items()
            if name + SUFFIXES[output] not in self._viewer.layers
        ]

    def _add_empty_matches(self, ndim: int, labels: bool) -> None:
        result = self._session.result
        assert result is not None
        # The columns the labels read (their rows come with the points).
        columns = features_of(result) if labels else {}
        self._set(
            "matched",
            "points",
            np.empty((0, ndim)),
            update=_MATCH_UPDATES,
            features={name: [] for name in columns},
            text=_SCORE_LABELS if labels else None,
        )

    def _add_empty_vectors(self, ndim: int) -> None:
        self._set(
            "displacement",
            "vectors",
            np.empty((0, 2, ndim)),
            update=_VECTOR_UPDATES,
            edge_width=1.5,
            length=self.vector_length(),
        )

    def _draw_matches(self) -> None:
        """Add or update the matched points."""
        session = self._session
        result, world = session.result, session.world
        assert session.inputs is not None and result is not None
        matched = matched_world(result, session.inputs.image_layer, world)
        layer = self._set(
            "matched",
            "points",
            matched,
            update=_MATCH_UPDATES,
            features=features_of(result),
            face_color=status_colors(result),
            size=world_size(session.inputs.points_layer),
            text=None if len(matched) > _MAX_LABELS else _SCORE_LABELS,
        )
        reconnect(
            layer.selected_data.events.items_changed, self._on_matched_picked
        )
        self._matched = layer

    def _draw_vectors(self) -> None:
        """Add or update the displacement vectors."""
        session = self._session
        result, world = session.result, session.world
        assert session.inputs is not None and result is not None
        matched = matched_world(result, session.inputs.image_layer, world)
        vectors = np.stack([world, matched - world], axis=1)
        self._set(
            "displacement",
            "vectors",
            vectors.reshape(-1, 2, world.shape[1]),
            update=_VECTOR_UPDATES,
            edge_color=vector_colors(result, self._vector_coloring()),
            edge_width=1.5,
            length=self.vector_length(),
        )

    def _on_matched_picked(self, event: Any = None) -> None:
        # The user selected matches: their rows, and the first's surface.
        if self._syncing or self._matched is None:
            return
        selected = sorted(self._matched.selected_data)
        if selected:
            self._session.select(selected)
            self._session.show(selected[0])

    def _on_selected(self, points: list[int]) -> None:
        layer = self._matched
        if layer is None or layer not in self._viewer.layers:
            return
        wanted = {p for p in points if p < len(layer.data)}
        if set(layer.selected_data) != wanted:
            self._syncing = True
            try:
                layer.selected_data = wanted
            finally:
                self._syncing = False

    def redraw(self) -> None:
        """Draw the matches and the shown surface again (the target layer
        moved in world, or the matches were replaced by new positions)."""
        if self._session.result is None:
            return
        self._on_changed()
        self.redraw_surface()

    def redraw_matches(self) -> None:
        """Draw the matches and vectors again (e.g. another colouring)."""
        if self._session.result is not None:
            self._on_changed()

    def redraw_surface(self) -> None:
        """Draw the shown surface again (e.g. the height field was asked
        for)."""
        with self.keeping_active_layer():
            self._on_shown(self.shown if self.shown is not None else 0)

    def _on_shown(self, index: int, surface: Surface | None = None) -> None:
        """Show the surface of point `index` (or the next that has one)."""
        result = self._session.result
        if result is None:
            return
        row = index
        if surface is None:
            found = _first_surface(result, index)
            if found is None:
                return
            row, surface = found
        self._draw_surface(row, surface)

    def _draw_surface(self, row: int, surface: Surface) -> None:
        inputs = self._inputs
        data, affine = surface_placement(surface, inputs.image_layer)
        layer = self._set(
            "surface",
            "image",
            data,
            update=("affine",),
            affine=affine,
            **surface_style(),
        )
        layer.metadata["point"] = row
        self.shown = row
        self.defer(lambda: self._mark_peaks_of(row, surface))
        if self._want_height_field():
            self._draw_height_field(surface)

    def _mark_peaks_of(self, row: int, surface: Surface) -> None:
        """`_mark_peaks`, unless another surface is shown by now."""
        if self.shown == row and not self._session.is_closed:
            with self.keeping_active_layer():
                self._mark_peaks(surface)

    def _mark_peaks(self, surface: Surface) -> None:
        """Mark the best and the second-best peak of the shown surface."""
        inputs = self._inputs
        best = argmax_index(surface.values)
        second, _ = second_peak(surface.values)
        peaks = [best] if second is None else [best, second]
        plane = np.asarray(surface.plane, dtype=float)
        data = [np.concatenate([plane, surface.origin + p]) for p in peaks]
        world = convert(np.asarray(data), data_to_world(inputs.image_layer))
        layer = self._set(
            "peaks",
            "points",
            world,
            update=("face_color",),
            face_color=["white", "magenta"][: len(world)],
            symbol="cross",
            size=8 * pixel_size(inputs.image_layer),
        )
        kinds = ["best", "second"][: len(world)]
        if list(layer.features.get("peak", [])) != kinds:
            layer.features = {"peak": kinds}

    def _draw_height_field(self, surface: Surface) -> None:
        """The surface as a mesh whose height is the NCC (for 3-D view)."""
        if surface.values.ndim != 2:
            from napari.utils.notifications import show_info

            show_info("A height field needs a 2-D surface (2-D matching).")
            return
        inputs = self._inputs
        vertices, faces, values = height_field(surface, inputs.image_layer)
        self._set(
            "height field",
            "surface",
            (vertices, faces, values),
            colormap="turbo",
            contrast_limits=(-1.0, 1.0),
        )


# What a layer made before (or empty) takes from each new result.
_MATCH_UPDATES = ("features", "face_color", "size")
_VECTOR_UPDATES = ("edge_color", "length")
_SCORE_LABELS = {
    # Three digits: 0.997 is not a perfect 1.00.
    "string": "{score:.3f}",
    "size": 7,
    "color": "white",
    "anchor": "upper_left",
}


def _first_surface(
    result: MatchResult, index: int
) -> tuple[int, Surface] | None:
    """The surface of row `index`, or else of the first row after it (then
    before it) that has one."""
    for row in [*range(index, len(result)), *range(index)]:
        try:
            return row, result.surface(row)
        except ValueError:
            continue
    return None
