"""The output layers of a run, drawn from the session as it changes.

Named after the points layer: ``<points> matched`` (scored points coloured
by status), ``<points> displacement`` (vectors), ``<points> NCC surface``
(the surface of the shown point, under its match), ``<points> peaks`` (its
best and second-best peak) and, on demand, ``<points> NCC height field``
and the dense field's ``<points> field row`` (``col``, ``magnitude``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core._peaks import argmax_index, second_peak
from ..matching._result import MatchResult, Status, Surface
from .layers import convert, data_to_world, reconnect, set_or_add
from .session import MatchSession, RunInputs

if TYPE_CHECKING:
    from collections.abc import Iterator

    import napari

STATUS_COLORS = {
    Status.OK: (0.2, 0.9, 0.3, 1.0),
    Status.AMBIGUOUS: (1.0, 0.8, 0.1, 1.0),
    Status.TWO_MOTIONS: (0.1, 0.75, 0.65, 1.0),
    Status.EDGE_ONLY: (0.3, 0.8, 1.0, 1.0),
    Status.UNCERTAIN: (0.55, 0.7, 1.0, 1.0),
    Status.INCONSISTENT: (1.0, 0.55, 0.0, 1.0),
    Status.OUTLIER: (1.0, 0.4, 0.7, 1.0),
    Status.ON_BORDER: (1.0, 0.55, 0.0, 1.0),
    Status.LOW_SCORE: (1.0, 0.2, 0.2, 1.0),
    Status.TRANSFORM_OUTLIER: (0.85, 0.3, 0.95, 1.0),
}
_FAILED_COLOR = (0.6, 0.6, 0.6, 1.0)
NCC_COLORMAP = {
    "colors": [[0.1, 0.2, 0.9, 1.0], [1.0, 1.0, 1.0, 1.0], [0.9, 0.1, 0.1, 1]],
    "name": "ncc (blue -1, white 0, red +1)",
}
# How the displacement vectors are coloured; plain is one colour.
VECTOR_COLORINGS = ("magnitude", "status", "plain")
PLAIN_VECTOR_COLOR = "yellow"
MAGNITUDE_COLORMAP = "turbo"
# Matched points beyond this many get no score labels (clutter, slow).
_MAX_LABELS = 500
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


def features_of(result: MatchResult) -> dict[str, np.ndarray]:
    """Per-point columns for the matched layer's ``features``."""
    table = result.to_table()
    keep = [
        name for name in table if not name.startswith(("point-", "matched-"))
    ]
    return {name: table[name] for name in keep}


def status_colors(result: MatchResult) -> np.ndarray:
    """One RGBA colour per row, by status."""
    return np.array(
        [STATUS_COLORS.get(s, _FAILED_COLOR) for s in result.status]
    )


def magnitudes(result: MatchResult) -> np.ndarray:
    """Length of each row's displacement in pixels (NaN: no match)."""
    return np.sqrt(np.sum(np.asarray(result.offset, float) ** 2, axis=1))


def magnitude_limits(result: MatchResult) -> tuple[float, float]:
    """The range of the ok matches' magnitudes (px), for the colormap.

    Other rows are left out, so that one wild match does not squeeze the
    colours of all the others; they get the colour of the nearest end.
    """
    lengths = magnitudes(result)
    ok = np.asarray(result.status) == Status.OK
    finite = lengths[np.isfinite(lengths)]
    usable = lengths[ok & np.isfinite(lengths)]
    values = usable if usable.size else finite
    if values.size == 0:
        return 0.0, 1.0
    return float(values.min()), float(values.max())


def vector_colors(result: MatchResult, coloring: str) -> Any:
    """The displacement vectors' ``edge_color`` for `coloring` (one of
    VECTOR_COLORINGS): a colour name, or one RGBA row per vector."""
    if coloring == "status":
        return status_colors(result)
    if coloring != "magnitude":
        return PLAIN_VECTOR_COLOR
    from napari.utils.colormaps import ensure_colormap

    low, high = magnitude_limits(result)
    lengths = magnitudes(result)
    # A guard against a zero range (all vectors alike).
    scaled = np.clip((lengths - low) / max(high - low, 1e-12), 0.0, 1.0)
    colors = ensure_colormap(MAGNITUDE_COLORMAP).map(np.nan_to_num(scaled))
    colors[~np.isfinite(lengths)] = _FAILED_COLOR
    return colors


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


def surface_style() -> dict[str, Any]:
    """How an NCC surface layer looks: the NCC colormap over [-1, 1],
    see-through over the image under it."""
    import napari

    return {
        "colormap": napari.utils.Colormap(**NCC_COLORMAP),
        "contrast_limits": (-1.0, 1.0),
        "opacity": 0.6,
    }


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
        """Update or add the `output` layer (a key of SUFFIXES)."""
        name = self._inputs.points_layer.name + SUFFIXES[output]
        return set_or_add(self._viewer, name, kind, data, **kwargs)

    @contextmanager
    def keeping_active_layer(self) -> Iterator[None]:
        """Added output layers do not take over the user's active layer."""
        selection = self._viewer.layers.selection
        active = selection.active
        yield
        if (
            active is not None
            and active in self._viewer.layers
            and selection.active is not active
        ):
            selection.active = active

    def _on_changed(self, rows: list[int] | None = None) -> None:
        with self.keeping_active_layer():
            self._draw_matches()

    def _draw_matches(self) -> None:
        """Add or update the matched points and the displacement vectors."""
        session = self._session
        result, world = session.result, session.world
        assert session.inputs is not None and result is not None
        matched = matched_world(result, session.inputs.image_layer, world)
        layer = self._set(
            "matched",
            "points",
            matched,
            update=("features", "face_color"),
            features=features_of(result),
            face_color=status_colors(result),
            size=np.array(session.inputs.points_layer.size, dtype=float),
            text=None if len(matched) > _MAX_LABELS else _SCORE_LABELS,
        )
        reconnect(
            layer.selected_data.events.items_changed, self._on_matched_picked
        )
        self._matched = layer
        vectors = np.stack([world, matched - world], axis=1)
        self._set(
            "displacement",
            "vectors",
            vectors.reshape(-1, 2, world.shape[1]),
            update=("edge_color",),
            edge_color=vector_colors(result, self._vector_coloring()),
            edge_width=1.5,
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
        self._mark_peaks(surface)
        if self._want_height_field():
            self._draw_height_field(surface)

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
            size=8,
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


_SCORE_LABELS = {
    "string": "{score:.2f}",
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
