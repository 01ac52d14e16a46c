"""The dock widget: pick layers, match the points, show the results."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    PushButton,
    SpinBox,
    TupleEdit,
)

from . import _layers
from ._live import LiveMatching
from ._match import MatchResult, match_points, second_peak
from ._peaks import argmax_index
from ._table import ResultsTable

if TYPE_CHECKING:
    import napari

# Points matched per step of the worker: progress and cancel granularity
# (each step pays for a thread pool; 256 keeps that under a few percent).
_CHUNK = 256

NCC_COLORMAP = {
    "colors": [[0.1, 0.2, 0.9, 1.0], [1.0, 1.0, 1.0, 1.0], [0.9, 0.1, 0.1, 1]],
    "name": "ncc (blue -1, white 0, red +1)",
}


class MatchWidget(Container):
    """Match the points of a Points layer from a template image to a target.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are matched; outputs are added to it.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self.template_layer = ComboBox(
            label="template image",
            choices=self._image_choices,
            tooltip="Image the points were clicked on",
        )
        self.image_layer = ComboBox(
            label="target image",
            choices=self._image_choices,
            tooltip="Image to find the points in (may be the same layer)",
        )
        self.points_layer = ComboBox(
            label="points",
            choices=self._points_choices,
            tooltip="Points of interest on the template image",
        )
        self.template_radius = SpinBox(
            value=15,
            min=1,
            max=10_000,
            label="template radius (px)",
            tooltip="Patch around each point: 2 r + 1 pixels wide",
        )
        # Per axis: a rectified stereo pair needs a few rows but many cols.
        self.search_radius = TupleEdit(
            value=(40, 40),
            label="search radius (rows, cols)",
            options={"min": 1, "max": 100_000},
            tooltip="Window searched in the target: 2 r + 1 pixels wide "
            "along each axis; the match can move r - template radius",
        )
        self.subpixel = CheckBox(value=True, text="sub-pixel refinement")
        self.live = CheckBox(
            value=False,
            text="live: re-match edited points",
            tooltip="On after the first run: adding, moving or deleting a "
            "point updates its match",
        )
        self.min_score = FloatSpinBox(
            value=0.5, min=-1.0, max=1.0, step=0.05, label="min score"
        )
        self.min_distinctiveness = FloatSpinBox(
            value=0.05,
            min=0.0,
            max=2.0,
            step=0.01,
            label="min distinctiveness",
        )
        self.max_consistency_error = FloatSpinBox(
            value=1.0,
            min=0.0,
            max=1000.0,
            step=0.5,
            label="max consistency error (px)",
        )
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.undo_button = PushButton(text="Undo last point edit")
        self.height_field = CheckBox(
            value=False,
            text="surface as 3-D height field",
            tooltip="Also show the shown surface as a height field; switch "
            "the viewer to 3-D to judge ambiguous peaks",
        )
        self.extend(
            [
                self.template_layer,
                self.image_layer,
                self.points_layer,
                self.template_radius,
                self.search_radius,
                self.subpixel,
                self.min_score,
                self.min_distinctiveness,
                self.max_consistency_error,
                self.live,
                self.run_button,
                self.cancel_button,
                self.undo_button,
                self.height_field,
            ]
        )
        # QPushButton.clicked passes a bool: wrap the calls.
        self.run_button.changed.connect(lambda: self.run())
        self.cancel_button.changed.connect(lambda: self.cancel())
        self.undo_button.changed.connect(lambda: self._live.undo())
        self.height_field.changed.connect(self._toggle_height_field)
        self.result: MatchResult | None = None
        self.table = None
        self._shown = None
        self._matched_layer = None
        self._live = LiveMatching(self)
        self._worker = None

        self._automatic = True
        self._picking = False
        for picker in (
            self.template_layer,
            self.image_layer,
            self.points_layer,
        ):
            picker.changed.connect(self._user_picked)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self._layers_changed)
        self._layers_changed()

    # --- layer pickers ------------------------------------------------

    def _layers_of(self, kind: str) -> list:
        import napari

        layer_type = getattr(napari.layers, kind)
        return [ly for ly in self._viewer.layers if isinstance(ly, layer_type)]

    def _image_choices(self, widget=None) -> list[tuple[str, object]]:
        return [
            (layer.name, layer)
            for layer in self._layers_of("Image")
            if not layer.name.endswith(_OUTPUT_SUFFIXES)
        ]

    def _points_choices(self, widget=None) -> list[tuple[str, object]]:
        names = _OUTPUT_SUFFIXES
        return [
            (layer.name, layer)
            for layer in self._layers_of("Points")
            if not layer.name.endswith(names)
        ]

    def _layers_changed(self, event=None) -> None:
        for layer in self._viewer.layers:
            layer.events.name.disconnect(self._refresh_choices)
            layer.events.name.connect(self._refresh_choices)
        self._refresh_choices()

    def _refresh_choices(self, event=None) -> None:
        self._picking = True
        self.reset_choices()
        self._picking = False
        if self._automatic:
            self._pick_defaults()

    def _user_picked(self, value=None) -> None:
        # Once the user chooses a layer, layer changes no longer re-pick.
        if not self._picking:
            self._automatic = False

    def _pick_defaults(self) -> None:
        """Choose layers from the selection first, then in layer order:
        two different images when there are two, and a Points layer."""
        selected = list(self._viewer.layers.selection)
        images = [ly for _, ly in self._image_choices()]
        points = [ly for _, ly in self._points_choices()]
        images = [ly for ly in selected if ly in images] + images
        points = [ly for ly in selected if ly in points] + points
        self._picking = True
        if images:
            self.template_layer.value = images[0]
            others = [ly for ly in images if ly is not images[0]]
            self.image_layer.value = (others or images)[0]
        if points:
            self.points_layer.value = points[0]
        self._picking = False

    # --- running ------------------------------------------------------

    def run(self):
        """Match the chosen points in a background worker.

        Returns the started worker, or None when the inputs cannot be
        matched (a notification says why; nothing is added or changed).
        """
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_warning

        problem, job = self._prepare()
        if problem:
            show_warning(problem)
            return None
        # A run confirms the choices: new layers no longer re-pick them.
        self._automatic = False
        chunks = max(1, int(np.ceil(len(job["points"]) / _CHUNK)))
        worker = create_worker(
            _match_in_chunks,
            job,
            _progress={"total": chunks, "desc": "Matching points"},
            # Handled here, so the error is not raised again in the GUI.
            _connect={"errored": self._report_error},
            _start_thread=False,
        )
        worker.returned.connect(lambda result: self._show(result, job))
        worker.aborted.connect(self._report_cancel)
        worker.finished.connect(self._finished)
        self._worker = worker
        self._live.reset()
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running worker after its current chunk of points."""
        if self._worker is not None:
            self._worker.quit()

    def _prepare(self):
        """Check the inputs; return (problem, None) or (None, job)."""
        template_layer = self.template_layer.value
        image_layer = self.image_layer.value
        points_layer = self.points_layer.value
        if template_layer is None or image_layer is None:
            return "Choose a template image and a target image layer.", None
        if points_layer is None:
            return "Choose a Points layer with points of interest.", None
        if len(points_layer.data) == 0:
            return (
                f"'{points_layer.name}' has no points: click points of "
                "interest on the template image first."
            ), None
        template = _layers.image_array(template_layer)
        target = _layers.image_array(image_layer)
        if not (template.ndim == target.ndim == points_layer.ndim):
            return (
                f"Layers with incompatible dimensionality: template "
                f"'{template_layer.name}' has {template.ndim} axes, target "
                f"'{image_layer.name}' {target.ndim}, points "
                f"'{points_layer.name}' {points_layer.ndim}; choose layers "
                "with the same number of axes."
            ), None
        t_radius = self.template_radius.value
        s_radius = tuple(self.search_radius.value)
        smallest = min(min(template.shape[-2:]), min(target.shape[-2:]))
        if 2 * t_radius + 1 > smallest:
            return (
                f"The template radius {t_radius} is too large for images of "
                f"{template.shape[-2:]} and {target.shape[-2:]} pixels; make "
                f"it at most {(smallest - 1) // 2}."
            ), None
        if min(s_radius) < t_radius:
            return (
                f"The search radius {s_radius} must be at least the "
                f"template radius ({t_radius}) along each axis."
            ), None
        world = _layers.convert(
            np.asarray(points_layer.data, float),
            _layers.data_to_world(points_layer),
        )
        points = _layers.convert(world, _layers.world_to_data(template_layer))
        guesses = _layers.convert(world, _layers.world_to_data(image_layer))
        inside = np.all(
            (np.rint(points) >= 0) & (np.rint(points) < template.shape), axis=1
        )
        if not inside.any():
            return (
                f"All {len(points)} points of '{points_layer.name}' lie "
                f"outside the template image '{template_layer.name}'."
            ), None
        job = {
            "template": template,
            "target": target,
            "points": points,
            "guesses": guesses,
            "world": world,
            "layers": (template_layer, image_layer, points_layer),
            "options": {
                "template_radius": t_radius,
                "search_radius": s_radius,
                "subpixel": self.subpixel.value,
                "min_score": self.min_score.value,
                "min_distinctiveness": self.min_distinctiveness.value,
                "max_consistency_error": self.max_consistency_error.value,
            },
        }
        return None, job

    def _finished(self) -> None:
        self._worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False

    def _report_error(self, error: Exception) -> None:
        from napari.utils.notifications import show_error

        show_error(f"Matching failed: {error}")

    def _report_cancel(self) -> None:
        from napari.utils.notifications import show_info

        show_info("Matching cancelled; no layers were changed.")

    # --- results ------------------------------------------------------

    def still_shown(self, points_layer) -> bool:
        """Whether `points_layer` is still in the viewer.

        A result that arrives after the layer was removed, or the viewer
        closed (which removes all layers), is dropped.
        """
        return points_layer in self._viewer.layers

    def _show(self, result: MatchResult, job: dict) -> None:
        """Keep a finished run and show it; later edits update it live."""
        if not self.still_shown(job["layers"][2]):
            return
        self.result = result
        self._job = job
        self._world = job["world"].copy()
        if self.table is None:
            self.table = ResultsTable(self)
            self._viewer.window.add_dock_widget(
                self.table, name="NCC match results", area="bottom"
            )
        with self._keeping_active_layer():
            self.refresh_outputs(show=0)
        points_layer = job["layers"][2]
        self._live.follow(points_layer)
        _reconnect(
            points_layer.selected_data.events.items_changed,
            self._points_selected,
        )
        self.live.value = True

    @contextmanager
    def _keeping_active_layer(self):
        """Added output layers do not take over the user's active layer."""
        selection = self._viewer.layers.selection
        active = selection.active
        yield
        if active is not None and active in self._viewer.layers:
            selection.active = active

    def _toggle_height_field(self) -> None:
        with self._keeping_active_layer():
            self.show_surface(self._shown if self._shown is not None else 0)

    def refresh_outputs(self, show: int | None = None, points=None) -> None:
        """Add or update the matched points, vectors and surface layers.

        `points` names the rows that changed (the table rewrites only
        those); by default, all.
        """
        result, world = self.result, self._world
        _, image_layer, points_layer = self._job["layers"]
        names = _layers.output_names(points_layer)
        matched = _layers.matched_world(result, image_layer, world)
        layer = _layers.set_or_add(
            self._viewer,
            names["matched"],
            "points",
            matched,
            update=("features", "face_color"),
            features=_layers.features_of(result),
            face_color=_layers.status_colors(result),
            size=np.array(points_layer.size, dtype=float),
            # Thousands of labels are clutter, and slow to draw.
            text=None
            if len(matched) > _MAX_LABELS
            else {
                "string": "{score:.2f}",
                "size": 7,
                "color": "white",
                "anchor": "upper_left",
            },
        )
        _reconnect(
            layer.selected_data.events.items_changed, self._selection_changed
        )
        vectors = np.stack([world, matched - world], axis=1)
        _layers.set_or_add(
            self._viewer,
            names["displacement"],
            "vectors",
            vectors.reshape(-1, 2, world.shape[1]),
            edge_color="yellow",
            edge_width=1.5,
        )
        self._matched_layer = layer
        if show is not None:
            self.show_surface(show)
        if self.table is not None:
            self.table.refresh(points)

    def _selection_changed(self, event=None) -> None:
        selected = sorted(self._matched_layer.selected_data)
        if selected:
            self.show_surface(selected[0])
            if self.table is not None:
                self.table.select_points(selected)

    def _points_selected(self, event=None) -> None:
        layer = self._job["layers"][2]
        selected = [
            i for i in sorted(layer.selected_data) if i < len(self.result)
        ]
        if selected and self.table is not None:
            self.table.select_points(selected)

    def show_surface(self, index: int, surface=None) -> None:
        """Show the correlation surface of point `index` under its match.

        `surface` may be given when it was computed already (live mode).
        """
        if self.result is None:
            return
        import napari

        row = index
        if surface is None:
            # The requested point, or else the first that has a surface.
            for row in [*range(index, len(self.result)), *range(index)]:
                try:
                    surface = self.result.surface(row)
                except ValueError:
                    continue
                break
            else:
                return
        _, image_layer, points_layer = self._job["layers"]
        data, affine = _layers.surface_placement(surface, image_layer)
        name = _layers.output_names(points_layer)["surface"]
        colormap = napari.utils.Colormap(**NCC_COLORMAP)
        layer = _layers.set_or_add(
            self._viewer,
            name,
            "image",
            data,
            update=("affine",),
            affine=affine,
            colormap=colormap,
            contrast_limits=(-1.0, 1.0),
            opacity=0.6,
        )
        layer.metadata["point"] = row
        self._shown = row
        self._mark_peaks(surface, image_layer, points_layer)
        if self.height_field.value:
            self._show_height_field(surface, image_layer, points_layer)

    def _mark_peaks(self, surface, image_layer, points_layer) -> None:
        """Mark the best and the second-best peak of the shown surface."""
        best = argmax_index(surface.values)
        second, _ = second_peak(surface.values)
        peaks = [best] if second is None else [best, second]
        plane = np.asarray(surface.plane, dtype=float)
        data = [np.concatenate([plane, surface.origin + p]) for p in peaks]
        world = _layers.convert(
            np.asarray(data), _layers.data_to_world(image_layer)
        )
        layer = _layers.set_or_add(
            self._viewer,
            _layers.output_names(points_layer)["peaks"],
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

    def _show_height_field(self, surface, image_layer, points_layer):
        """The surface as a mesh whose height is the NCC (for 3-D view)."""
        if surface.values.ndim != 2:
            from napari.utils.notifications import show_info

            show_info("A height field needs a 2-D surface (2-D matching).")
            return
        vertices, faces, values = _layers.height_field(surface, image_layer)
        name = _layers.output_names(points_layer)["height field"]
        _layers.set_or_add(
            self._viewer,
            name,
            "surface",
            (vertices, faces, values),
            colormap="turbo",
            contrast_limits=(-1.0, 1.0),
        )


# Matched points beyond this many get no score labels.
_MAX_LABELS = 500
# Our own output layers are never offered as inputs.
_OUTPUT_SUFFIXES = (" matched", " peaks", " NCC surface")


def _reconnect(signal, slot) -> None:
    """Connect `slot` once, however often this runs."""
    signal.disconnect(slot)
    signal.connect(slot)


class MatchingFailed(Exception):
    """An error inside the worker, passed on to the user.

    superqt's workers swallow a RuntimeError without emitting ``errored``
    or ``finished``; re-raising every error as this type keeps them
    visible.
    """


def _match_in_chunks(job: dict):
    """Generator for the worker: match chunk by chunk, yielding progress."""
    parts = []
    points, guesses = job["points"], job["guesses"]
    for start in range(0, len(points), _CHUNK):
        stop = start + _CHUNK
        try:
            part = match_points(
                job["template"],
                job["target"],
                points[start:stop],
                image_points=guesses[start:stop],
                **job["options"],
            )
        except Exception as error:
            raise MatchingFailed(str(error)) from error
        parts.append(part)
        yield stop
    return MatchResult.concatenate(parts)
