"""How the results are shown: uncertainty ellipses, the surface as a
height field, and the vector and ellipse scales."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, FloatSpinBox

if TYPE_CHECKING:
    import napari
    from magicgui.widgets import Widget

    from .ellipses import UncertaintyEllipses
    from .outputs import OutputLayers


class DisplayControls:
    """The display controls of the Match tab, wired to the views."""

    def __init__(self) -> None:
        self.ellipses = CheckBox(
            value=False,
            text="uncertainty ellipses",
            tooltip="Draw each match's 2-sigma uncertainty ellipse (long "
            "and thin along the edge for 'edge only' matches)",
        )
        self.height_field = CheckBox(
            value=False,
            text="surface as 3-D height field",
            tooltip="Show the shown surface as a height field too, in the "
            "3-D view, to judge ambiguous peaks; off takes it away",
        )
        self.vector_scale = FloatSpinBox(
            value=1.0,
            min=0.1,
            max=1000.0,
            step=1.0,
            label="vector length ×",
            tooltip="Draw the displacement vectors this many times longer "
            "(few-pixel displacements are hard to see)",
        )
        self.ellipse_scale = FloatSpinBox(
            value=1.0,
            min=0.1,
            max=1000.0,
            step=1.0,
            label="ellipse scale ×",
            tooltip="Draw the uncertainty ellipses this many times larger "
            "than 2 sigma (sub-pixel ones are hard to see)",
        )

    @property
    def widgets(self) -> list[Widget]:
        """The controls, in their order on screen."""
        return [
            self.ellipses,
            self.height_field,
            self.vector_scale,
            self.ellipse_scale,
        ]

    def connect(
        self,
        viewer: napari.Viewer,
        outputs: OutputLayers,
        ellipses: UncertaintyEllipses,
    ) -> None:
        """Redraw the views as the controls change."""
        self._viewer, self._outputs = viewer, outputs
        outputs.vector_length = lambda: self.vector_scale.value
        self.height_field.changed.connect(self._on_height_field)
        self.ellipses.changed.connect(lambda: ellipses.redraw())
        self.ellipse_scale.changed.connect(lambda: ellipses.redraw())
        self.vector_scale.changed.connect(outputs.redraw_matches)

    def _on_height_field(self, on: bool) -> None:
        """The height field is a 3-D view: shown with it, gone without
        (no slider left for its height axis)."""
        if on:
            self._viewer.dims.ndisplay = 3
            self._outputs.redraw_surface()
        else:
            self._outputs.remove_height_field()
            self._viewer.dims.ndisplay = 2
