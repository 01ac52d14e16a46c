"""Pairs by hand (affinder's workflow): click a point on the template, then
its counterpart on the target, for as many pairs as the model needs; the
transform fitted to the pairs then guides Refine of every point.

The clicks go to two Points layers placed exactly like their images, so
that their data are the images' pixel coordinates. While the mode is on,
the image to click on is shown and the other hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, Label, PushButton

from ..registration import TooFewMatches
from ..registration._models import requirements
from ..registration._transform import TransformFit, fit_transform
from .controls import PRESET_KEY
from .overlay import placement

if TYPE_CHECKING:
    import napari

TEMPLATE_PAIRS, TARGET_PAIRS = "pairs (template)", "pairs (target)"
_COLOURS = {TEMPLATE_PAIRS: "cyan", TARGET_PAIRS: "magenta"}


def pair_arrays(
    template_points: np.ndarray, target_points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The complete pairs: the first points of each layer, as many as
    the shorter has, as (N, D) float arrays of pixels."""
    count = min(len(template_points), len(target_points))
    source = np.asarray(template_points, dtype=float)[:count]
    target = np.asarray(target_points, dtype=float)[:count]
    return source, target


class HandPairs:
    """The **pairs by hand** controls (`widgets`) and their two Points
    layers.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the pairs layers are added.
    images : callable
        The picked template and target Image layers (None when not
        picked).
    model : callable
        The transform model chosen in the Register tab.
    use_fit : callable
        Called with the fit of the pairs and its one-line description.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        images: Callable[[], tuple[Any, Any]],
        model: Callable[[], str],
        use_fit: Callable[[TransformFit, str], None],
    ):
        self._viewer = viewer
        self._images = images
        self._model = model
        self._use_fit = use_fit
        # The images' visibility before the mode hid one of them.
        self._shown: dict[Any, bool] = {}
        self.mode = CheckBox(
            text="pairs by hand",
            tooltip="Click a point on the template, then the same point "
            "on the target, for each pair; the image to click on is shown",
        )
        self.fit_button = PushButton(
            text="Fit pairs",
            enabled=False,
            tooltip="Fit the model to the clicked pairs; Refine then "
            "matches every point through it",
        )
        self.undo_button = PushButton(
            text="Undo last pair",
            enabled=False,
            tooltip="Remove the last pair (or a template click still "
            "waiting for its partner)",
        )
        self.pairs_label = Label(value="", label="by hand")
        self.widgets = (
            self.mode,
            self.fit_button,
            self.undo_button,
            self.pairs_label,
        )
        self.mode.changed.connect(self._on_mode)
        self.fit_button.changed.connect(lambda: self.fit())
        self.undo_button.changed.connect(lambda: self.undo())

    def layers(self) -> tuple[Any, Any]:
        """The template's and the target's pairs layers (None when not
        there)."""
        layers = self._viewer.layers
        return tuple(  # type: ignore[return-value]
            layers[name] if name in layers else None
            for name in (TEMPLATE_PAIRS, TARGET_PAIRS)
        )

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The complete pairs: template pixels and target pixels."""
        template, target = self.layers()
        if template is None or target is None:
            return np.empty((0, 2)), np.empty((0, 2))
        return pair_arrays(template.data, target.data)

    # --- the mode -----------------------------------------------------

    def start(self) -> bool:
        """Add (or place again) the pairs layers over the picked images
        and wait for a click on the template; False when the images are
        not picked (a notification says so)."""
        from napari.utils.notifications import show_warning

        template_image, target_image = self._images()
        if template_image is None or target_image is None:
            show_warning("Choose a template image and a target image first.")
            return False
        for name, image in (
            (TEMPLATE_PAIRS, template_image),
            (TARGET_PAIRS, target_image),
        ):
            self._place(name, image)
        self._shown = {
            image: image.visible for image in (template_image, target_image)
        }
        self._next()
        return True

    def stop(self) -> None:
        """Leave the mode: the images shown as before, no more adding."""
        for layer in self.layers():
            if layer is not None:
                layer.mode = "pan_zoom"
        for image, visible in self._shown.items():
            if image in self._viewer.layers:
                image.visible = visible
        self._shown = {}

    def _on_mode(self, on: bool) -> None:
        if not on:
            self.stop()
        elif not self.start():
            self.mode.value = False

    def _place(self, name: str, image: napari.layers.Image) -> None:
        """The pairs layer `name` over `image`: placed like it (its data
        are the image's pixels), numbered."""
        where = placement(image)
        layers = self._viewer.layers
        if name in layers:
            layer = layers[name]
            for key, value in where.items():
                setattr(layer, key, value)
            return
        # A fiftieth of the image, in world units like the layer.
        size = 0.02 * float(np.ptp(image.extent.world, axis=0)[-2:].max())
        layer = self._viewer.add_points(
            np.empty((0, image.ndim)),
            name=name,
            size=size,
            face_color=_COLOURS[name],
            text={"string": "{pair}", "color": _COLOURS[name], "size": 12},
            features={"pair": np.empty(0, dtype=int)},
            # Never picked as the points to match.
            metadata={PRESET_KEY: {"answers": True}},
            **where,
        )
        layer.events.data.connect(self._on_clicked)

    def _on_clicked(self, event: Any = None) -> None:
        """A point added (or removed): number them, wait for the next."""
        for layer in self.layers():
            if layer is not None and len(layer.features) == len(layer.data):
                pair = np.arange(1, len(layer.data) + 1)
                if not np.array_equal(layer.features.get("pair"), pair):
                    layer.features = {"pair": pair}
        if self.mode.value:
            self._next()
        self._update()

    def _next(self) -> None:
        """Show the image whose point comes next, its layer adding."""
        template, target = self.layers()
        if template is None or target is None:
            return
        waiting = target if len(template.data) > len(target.data) else template
        for image, layer in zip(self._shown, (template, target), strict=True):
            image.visible = layer is waiting
        self._viewer.layers.selection.active = waiting
        waiting.mode = "add"

    def _update(self) -> None:
        template, target = self.layers()
        source, _ = self.pairs()
        dangling = template is not None and target is not None
        dangling = dangling and len(template.data) != len(target.data)
        self.undo_button.enabled = len(source) > 0 or dangling
        self.fit_button.enabled = len(source) > 0
        need = self._needed(source.shape[1] if len(source) else 2)
        self.pairs_label.value = f"{len(source)} pairs ({need} for the model)"

    def _needed(self, ndim: int) -> int:
        try:
            return requirements(self._model(), ndim)[0]
        except ValueError:
            return 0

    # --- the pairs ----------------------------------------------------

    def undo(self) -> bool:
        """Remove the last pair (or a template point still waiting for its
        counterpart); False when there is none."""
        template, target = self.layers()
        if template is None or target is None or len(template.data) == 0:
            return False
        if len(template.data) <= len(target.data):
            target.data = target.data[: len(template.data) - 1]
        template.data = template.data[: len(target.data)]
        return True

    def fit(self) -> TransformFit | None:
        """Fit the chosen model to the pairs (least squares: every pair
        counts) and hand it on; None when they cannot determine it (a
        notification says why)."""
        from napari.utils.notifications import show_warning

        source, target = self.pairs()
        try:
            fit = fit_transform(
                source, target, model=self._model(), robust=False
            )
        except TooFewMatches as error:
            show_warning(f"{error}: click more pairs.")
            return None
        except ValueError as error:
            show_warning(str(error))
            return None
        self._use_fit(fit, f"{fit.summary} (from pairs by hand)")
        return fit
