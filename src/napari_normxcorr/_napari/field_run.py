"""A dense field from the widget: `match_field` in a worker, then its
layers (vectors with a length scale; speed, vorticity and strain with
colour bars) in the template layer's units and place.

The pixel size and unit come from the template layer's ``scale`` and
``units``; the time between the images and its unit are asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    Container,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)

from ..fields._field_result import FieldResult
from ..fields._match_field import match_field
from ..matching._result import Status
from .layers import set_or_add

if TYPE_CHECKING:
    import napari

Layers = Callable[[], tuple[Any, Any]]

VECTORS = "field vectors"
_REFRESHED = (
    "translate",
    "scale",
    "edge_color",
    "features",
    "contrast_limits",
)


class FieldRun(Container):
    """The controls and the run of a dense field.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the layers go.
    layers : callable
        Returns the (template, target) Image layers chosen in the widget.
    notify : callable
        Shows a message to the user (a napari notification).
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        layers: Layers,
        notify: Callable[[str], None],
    ):
        self.spacing = SpinBox(
            value=16,
            min=2,
            max=1024,
            label="vector spacing (px)",
            tooltip="Distance between the vectors, in template pixels.",
        )
        self.window = SpinBox(
            value=16,
            min=2,
            max=512,
            label="window radius (px)",
            tooltip="Half size of the windows of the last passes: 16 gives "
            "33-pixel windows.",
        )
        self.reach = SpinBox(
            value=16,
            min=1,
            max=1024,
            label="max displacement (px)",
            tooltip="The longest vector the first pass looks for.",
        )
        self.passes = SpinBox(
            value=3,
            min=1,
            max=8,
            label="passes",
            tooltip="1: one pass; 3: a coarse pass and two with window "
            "deformation (the target resampled through the field).",
        )
        # Text, not a spin box: intervals run from ns to hours.
        self.interval = LineEdit(
            value="1",
            label="time between images",
            tooltip="For velocities and vorticity, in the time unit below "
            "(e.g. 0.001 or 1e-3).",
        )
        self.time_unit = LineEdit(
            value="frame",
            label="time unit",
            tooltip="Unit of the time between images (s, ms, frame...).",
        )
        self.length = FloatSpinBox(
            value=1.0,
            min=0.01,
            max=1e6,
            step=0.5,
            label="vector length ×",
            tooltip="How many times longer than the displacement the "
            "vectors are drawn.",
        )
        self.button = PushButton(
            text="Run dense field",
            tooltip="Match a grid of windows in passes of window "
            "deformation and show the vectors, speed, vorticity and strain.",
        )
        super().__init__(
            widgets=[
                self.spacing,
                self.window,
                self.reach,
                self.passes,
                self.interval,
                self.time_unit,
                self.button,
                self.length,
            ]
        )
        self._add_title()
        self.viewer, self._layers, self._notify = viewer, layers, notify
        self.result: FieldResult | None = None
        self.worker: Any = None
        self.button.changed.connect(self.run)
        self.length.changed.connect(self._set_length)

    def _add_title(self) -> None:
        """A heading across both columns of the controls."""
        from qtpy.QtWidgets import QLabel

        title = QLabel(
            "<b>Dense field</b> (PIV, DIC): a grid of windows matched in "
            "passes of window deformation"
        )
        title.setWordWrap(True)
        self.native.layout().insertWidget(0, title)

    def run(self) -> None:
        """Start match_field on the chosen layers (checked first)."""
        template, image = self._layers()
        problem = _problem(template, image) or _interval_problem(
            self.interval.value
        )
        if problem:
            self._notify(problem)
            return
        from napari.qt.threading import create_worker

        d = template.data.ndim
        scale = np.abs(np.asarray(template.scale, dtype=float)[-d:])
        worker = create_worker(
            match_field,
            np.asarray(template.data),
            np.asarray(image.data),
            self.spacing.value,
            template_radius=self.window.value,
            search_radius=self.window.value + self.reach.value,
            passes=self.passes.value,
            pixel_size=scale,
            unit=_unit(template),
            frame_interval=float(self.interval.value),
            time_unit=self.time_unit.value or "frame",
            _connect={
                "errored": lambda error: self._notify(f"Dense field: {error}")
            },
            _start_thread=False,
            _progress={"desc": "dense field"},
        )
        worker.returned.connect(
            lambda result: self.add_layers(result, template)
        )
        worker.finished.connect(lambda: setattr(self.button, "enabled", True))
        self.button.enabled = False
        self.worker = worker
        worker.start()

    def add_layers(self, result: FieldResult, template: Any) -> None:
        """Add (or update) the field's layers over the template layer."""
        self.result = result
        shift = np.asarray(template.translate, dtype=float)[
            -result.points.shape[-1] :
        ]
        for data, style, kind in result.to_napari():
            name = style.pop("name")
            style["translate"] = (
                np.asarray(style.get("translate", 0.0)) + shift
            )
            if kind == "vectors":
                style["length"] *= self.length.value
            # The inputs' units, so that napari keeps rendering them.
            style["units"] = tuple(template.units)[-len(shift) :]
            # Re-runs refresh where the layers sit and what they show;
            # a user's restyling stays.
            update = [k for k in _REFRESHED if k in style]
            layer = set_or_add(self.viewer, name, kind, data, update, **style)
            if kind == "image":
                layer.colorbar.visible = bool(style.get("visible", True))
        self.viewer.layers.selection.active = self.viewer.layers[VECTORS]
        given = int((result.ok | (result.status == Status.REPLACED)).sum())
        self._notify(
            f"Dense field: {given} of {result.status.size} vectors "
            f"({int(result.ok.sum())} ok)."
        )

    def _set_length(self) -> None:
        if self.result is None or VECTORS not in self.viewer.layers:
            return
        base = self.result.vector_length()
        self.viewer.layers[VECTORS].length = base * self.length.value


def _problem(template: Any, image: Any) -> str:
    """Why the layers cannot make a field, or ''."""
    if template is None or image is None:
        return "Dense field: choose a template image and a target image."
    if template is image:
        return (
            "Dense field: the template and the target are the same layer: "
            "choose the second image as target (or use Track for a "
            "time-lapse)."
        )
    if template.data.ndim not in (2, 3) or template.rgb:
        return (
            "Dense field: the images must be grey 2-D images or 3-D volumes."
        )
    if template.data.shape != image.data.shape:
        return (
            f"Dense field: the images differ in shape "
            f"({template.data.shape} and {image.data.shape})."
        )
    return ""


def _interval_problem(text: str) -> str:
    """Why `text` is not a time between images, or ''."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if np.isfinite(value) and value > 0:
        return ""
    return (
        "Dense field: the time between images must be a number > 0, "
        f"not {text!r}."
    )


def _unit(layer: Any) -> str:
    """The layer's length unit ('px' where it has none)."""
    units = getattr(layer, "units", None)
    if not units:
        return "px"
    try:
        text = format(units[-1], "~")  # pint's symbol: mm, not millimeter
    except (TypeError, ValueError):
        text = str(units[-1])
    return "px" if text in ("pixel", "px", "") else text
