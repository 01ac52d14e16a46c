"""The matching controls: the user's question first ("how far can a point
move?"), the radii that follow from it, and the verdict thresholds.

`search_radius` is what a run uses; `max_displacement` is the same thing
asked the user's way (search radius = template radius + max displacement,
per axis), and each follows the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
    Label,
    SpinBox,
    TupleEdit,
)

from ..matching._verdicts import (
    MAX_CONSISTENCY_ERROR,
    MAX_MOTION_GAP,
    MAX_NEIGHBOUR_RESIDUAL,
    MAX_UNCERTAINTY,
)
from .axes import DEPTH, FIRST_AXIS_CHOICES, FROM_LABELS
from .session import MatchOptions

if TYPE_CHECKING:
    import napari
    from magicgui.widgets import Widget

# Where a sample (or any layer) keeps the radii that suit it.
PRESET_KEY = "napari-normxcorr"
# The controls a script may reach on the widget itself (and a session
# saves), in the order they are set: the search radius after the radii.
SETTINGS = (
    "first_axis",
    "template_radius",
    "max_displacement",
    "template_radius_z",
    "max_displacement_z",
    "search_radius",
    "subpixel",
    "min_score",
    "min_peak_ratio",
    "max_motion_gap",
    "max_uncertainty",
    "max_consistency_error",
    "neighbours",
)


class MatchControls:
    """The widgets that set a run's `MatchOptions`."""

    def __init__(self) -> None:
        self.first_axis = ComboBox(
            choices=FIRST_AXIS_CHOICES,
            value=FROM_LABELS,
            label="first axis is",
            tooltip="What the axis in front of (rows, cols) is: time (each "
            "frame matched on its own) or depth z (a volume, matched in "
            "3-D); read from napari's axis labels unless you say",
        )
        self.axis_note = Label(value="")
        self.template_radius = SpinBox(
            value=15,
            min=1,
            max=10_000,
            label="template radius (px)",
            tooltip="Patch around each point that is looked for: 2 r + 1 "
            "pixels wide",
        )
        self.max_displacement = TupleEdit(
            value=(25, 25),
            label="max displacement (px)",
            options={"min": 0, "max": 100_000},
            tooltip="How far a point can move, along rows and columns "
            "(a rectified stereo pair: a few rows, many columns); the "
            "search radius follows",
        )
        self.template_radius_z = SpinBox(
            value=5,
            min=1,
            max=10_000,
            label="template radius z (px)",
            tooltip="Patch around each point along z (3-D matching)",
        )
        self.max_displacement_z = SpinBox(
            value=5,
            min=0,
            max=100_000,
            label="max displacement z (px)",
            tooltip="How far a point can move along z (3-D matching)",
        )
        self.search_radius = TupleEdit(
            value=(40, 40),
            label="search radius (rows, cols)",
            options={"min": 1, "max": 100_000},
            tooltip="Window searched in the target: 2 r + 1 pixels wide "
            "along each axis; template radius + max displacement",
        )
        self._add_thresholds()
        self._following = False
        self._adopted: Any = None
        self.max_displacement.changed.connect(self._search_follows)
        self.template_radius.changed.connect(self._search_follows)
        self.search_radius.changed.connect(self._displacement_follows)

    def _add_thresholds(self) -> None:
        self.subpixel = CheckBox(
            value=True,
            text="sub-pixel refinement",
            tooltip="Refine each match below a pixel (off: whole pixels, "
            "faster)",
        )
        self.min_score = FloatSpinBox(
            value=0.5,
            min=-1.0,
            max=1.0,
            step=0.05,
            label="min score",
            tooltip="NCC of the best match: below, 'low score'",
        )
        self.min_peak_ratio = FloatSpinBox(
            value=1.5,
            min=0.0,
            max=1000.0,
            step=0.1,
            label="min peak ratio",
            tooltip="(1 - second peak) / (1 - score): below, 'ambiguous'",
        )
        self.max_motion_gap = FloatSpinBox(
            value=MAX_MOTION_GAP,
            min=0.0,
            # NCC gains are at most 2: the top turns the test off.
            max=2.0,
            step=0.05,
            label="max motion gap",
            tooltip="How much better a quadrant of the template may score "
            "3 px or more from the match: above, 'two motions' (e.g. "
            "across a depth edge); 2 turns the test off",
        )
        self.max_uncertainty = FloatSpinBox(
            value=MAX_UNCERTAINTY,
            min=0.0,
            max=1000.0,
            step=0.05,
            label="max uncertainty (px)",
            tooltip="Largest standard deviation of a match: above, 'edge "
            "only' (elongated) or 'uncertain'",
        )
        self.max_consistency_error = FloatSpinBox(
            value=MAX_CONSISTENCY_ERROR,
            min=0.0,
            max=1000.0,
            step=0.5,
            label="max consistency error (px)",
            tooltip="How far matching back from the target may land from "
            "the point: above, 'inconsistent'",
        )
        self.neighbours = CheckBox(
            value=True,
            text="judge by neighbours ('outlier')",
            tooltip="Flag ok matches unlike their nearest ok matches (grids "
            "and dense points: planes of 16 or more ok matches)",
        )

    @property
    def basic(self) -> list[Widget]:
        """The controls of the first screen."""
        return [
            self.template_radius,
            self.max_displacement,
            self.template_radius_z,
            self.max_displacement_z,
        ]

    @property
    def advanced(self) -> list[Widget]:
        """The expert controls, folded away."""
        return [
            self.search_radius,
            self.subpixel,
            self.min_score,
            self.min_peak_ratio,
            self.max_motion_gap,
            self.max_uncertainty,
            self.max_consistency_error,
            self.neighbours,
        ]

    def _search_follows(self, *_: Any) -> None:
        if self._following:
            return
        self._following = True
        try:
            radius = self.template_radius.value
            self.search_radius.value = tuple(
                radius + m for m in self.max_displacement.value
            )
        finally:
            self._following = False

    def _displacement_follows(self, *_: Any) -> None:
        if self._following:
            return
        self._following = True
        try:
            radius = self.template_radius.value
            self.max_displacement.value = tuple(
                max(0, s - radius) for s in self.search_radius.value
            )
        finally:
            self._following = False

    def show_axis(self, kind: str | None, note: str) -> None:
        """Show the first-axis control for images with one (and the z
        radii for volumes)."""
        self.first_axis.visible = kind is not None
        self.axis_note.visible = bool(note)
        self.axis_note.value = note
        self.template_radius_z.visible = kind == DEPTH
        self.max_displacement_z.visible = kind == DEPTH

    @property
    def axis_controls(self) -> list[Widget]:
        """What the first axis is, and what that means: shown above the
        tabs, for every task."""
        self.axis_note.native.setWordWrap(True)
        return [self.first_axis, self.axis_note]

    def follow_template(
        self, layer: napari.layers.Image | None, kind: str | None
    ) -> None:
        """Radii that fit a new template: z radii within a thin volume,
        and the radii its metadata suggests (the samples carry them)."""
        if layer is None:
            return
        if kind == DEPTH:
            depth = int(layer.data.shape[-3 - int(layer.rgb)])
            most = max(1, (depth - 1) // 2)
            radius_z = self.template_radius_z
            radius_z.value = min(radius_z.value, most)
        preset = layer.metadata.get(PRESET_KEY, {})
        if preset and layer is not self._adopted:
            self._adopted = layer
            self.adopt(preset)

    def adopt(self, preset: dict[str, Any]) -> None:
        """Take the radii a layer's metadata suggests (sample data)."""
        if "template_radius" in preset:
            self.template_radius.value = int(preset["template_radius"])
        if "max_displacement" in preset:
            value = np.broadcast_to(preset["max_displacement"], (2,))
            self.max_displacement.value = tuple(int(v) for v in value)

    def options(self, volume: bool = False) -> MatchOptions:
        """The settings as chosen; `volume`: matched in 3-D (z first)."""
        radius = self.template_radius.value
        template: int | tuple[int, ...] = radius
        search = tuple(self.search_radius.value)
        if volume:
            z = self.template_radius_z.value
            template = (z, radius, radius)
            search = (z + self.max_displacement_z.value, *search)
        return MatchOptions(
            template_radius=template,
            search_radius=search,
            subpixel=self.subpixel.value,
            min_score=self.min_score.value,
            min_peak_ratio=self.min_peak_ratio.value,
            # At the top the test is off: not computed at all.
            max_motion_gap=(
                np.inf
                if self.max_motion_gap.value >= self.max_motion_gap.max
                else self.max_motion_gap.value
            ),
            max_uncertainty=self.max_uncertainty.value,
            max_consistency_error=self.max_consistency_error.value,
            max_neighbour_residual=(
                MAX_NEIGHBOUR_RESIDUAL if self.neighbours.value else np.inf
            ),
        )
