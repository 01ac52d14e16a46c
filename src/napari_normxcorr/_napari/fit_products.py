"""What a fit makes: the target overlaid on the template (and undone),
the fit as JSON, and the target warped onto the template's grid.

Only the target layer's ``affine`` changes (Undo puts it back); input data
never do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..registration._transform import TransformFit
from .overlay import (
    check_overlay,
    fit_record,
    overlay_affine,
    placement,
    warped_pixels,
)
from .session import MatchSession, RunInputs
from .side_by_side import SideBySide

if TYPE_CHECKING:
    import napari


class FitProducts:
    """The products of the Register tab's fit.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the target is overlaid and the warped target added.
    session : MatchSession
        The matches that were fitted.
    fit_and_inputs : callable
        The current fit and the matches' inputs; ValueError without a fit
        or when a layer of the matches is gone.
    redraw_outputs : callable
        Draws the output layers again (the target moved in world).
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        session: MatchSession,
        fit_and_inputs: Callable[[], tuple[TransformFit, RunInputs]],
        redraw_outputs: Callable[[], None],
    ):
        self._viewer = viewer
        self._session = session
        self._fit_and_inputs = fit_and_inputs
        self._redraw_outputs = redraw_outputs
        # Layers moved by Apply, with the affine each had before.
        self._moved: list[tuple[napari.layers.Image, np.ndarray]] = []
        self._side_by_side = SideBySide(viewer)

    @property
    def applied(self) -> bool:
        """Whether a layer was moved by Apply (and can be put back)."""
        return bool(self._moved)

    def apply(self) -> bool:
        """Set the target layer's ``affine`` so that it overlays the
        template; False when it cannot (a notification says why)."""
        from napari.utils.notifications import show_warning

        try:
            fit, inputs = self._fit_and_inputs()
            check_overlay(fit, inputs)
        except ValueError as error:
            show_warning(str(error))
            return False
        target = inputs.image_layer
        if not any(layer == target for layer, _ in self._moved):
            before = np.array(target.affine.affine_matrix, copy=True)
            self._moved.append((target, before))
        target.affine = overlay_affine(inputs.template_layer, target, fit)
        self._redraw_outputs()
        return True

    def undo_apply(self) -> bool:
        """Put back the affine the moved layers had; False when none
        was moved."""
        if not self._moved:
            return False
        for layer, affine in reversed(self._moved):
            layer.affine = affine
        self._moved.clear()
        if self._session.result is not None:
            self._redraw_outputs()
        return True

    def export_json(self, path: str | Path) -> None:
        """Write the fit (model, matrix, inverse, inliers, residuals, rms,
        threshold), its points in template pixels and their matches in
        target pixels as JSON.

        Raises
        ------
        ValueError
            Before a fit.
        """
        fit, inputs = self._fit_and_inputs()
        result = self._session.result
        assert result is not None  # there is a fit of it
        record = fit_record(fit, result, inputs)
        Path(path).write_text(json.dumps(record, indent=1, allow_nan=False))

    def export_dialog(self, parent: Any = None) -> None:
        """Ask for a file and export the fit to it."""
        from napari.utils.notifications import show_warning
        from qtpy.QtWidgets import QFileDialog

        try:
            self._fit_and_inputs()
        except ValueError as error:
            show_warning(str(error))
            return
        path, _ = QFileDialog.getSaveFileName(
            parent, "Export fit", "transform.json", "JSON (*.json)"
        )
        if path:
            self.export_json(path)

    def load(self, path: str | Path) -> TransformFit | None:
        """The fit written to `path` by Export fit, ``TransformFit.to_json``
        or ``register -o``; None when it holds none (a notification says
        why)."""
        from napari.utils.notifications import show_warning

        try:
            return TransformFit.from_json(path)
        except (OSError, ValueError) as error:
            show_warning(f"Cannot load the fit: {error}")
            return None

    def load_dialog(self, parent: Any, load: Callable[[str], object]) -> None:
        """Ask for a fit's JSON file and `load` it."""
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(
            parent, "Load fit", "", "JSON (*.json)"
        )
        if path:
            load(path)

    def add_warped(self) -> napari.layers.Image | None:
        """Add the target resampled into the template's grid, placed like
        the template (lazy for dask data); None when there is no fit."""
        from napari.utils.notifications import show_warning

        try:
            fit, inputs = self._fit_and_inputs()
        except ValueError as error:
            show_warning(str(error))
            return None
        shape = tuple(inputs.template.shape)
        data = warped_pixels(inputs.image_layer, inputs.target, fit, shape)
        name = f"{inputs.image_layer.name} warped"
        where = placement(inputs.template_layer)
        layers = self._viewer.layers
        if name in layers:
            layer = layers[name]
            layer.data = data
            for key, value in where.items():
                setattr(layer, key, value)
            return layer
        return self._add_warped_layer(name, data, where, inputs)

    def _add_warped_layer(
        self,
        name: str,
        data: Any,
        where: dict[str, Any],
        inputs: RunInputs,
    ) -> napari.layers.Image:
        """Add the warped target just above the template, half opaque."""
        target = inputs.image_layer
        style = {"rgb": True} if target.rgb else {"colormap": target.colormap}
        layer = self._viewer.add_image(
            data,
            name=name,
            opacity=0.5,
            # The target's intensities: no pass over a lazy array.
            contrast_limits=target.contrast_limits,
            **style,
            **where,
        )
        layers = self._viewer.layers
        if inputs.template_layer in layers:
            index = layers.index(inputs.template_layer) + 1
            layers.move(layers.index(layer), index)
        return layer

    def side_by_side(self, on: bool) -> bool:
        """Show the template and the target side by side (or restore the
        view); False when there is nothing to compare yet."""
        from napari.utils.notifications import show_warning

        inputs = self._session.inputs
        if not on:
            self._side_by_side.restore()
        elif inputs is None:
            show_warning("Run the matching first: nothing to compare.")
            return False
        else:
            self._side_by_side.show(inputs, self._session.result)
        return True
