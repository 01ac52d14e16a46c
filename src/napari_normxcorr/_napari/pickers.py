"""The layer pickers: which layers are offered, and which picked.

Our own output layers are never offered, and layers that hold known
answers (metadata ``{"napari-normxcorr": {"answers": True}}``) never
picked. Until the user chooses a layer
(or runs), the pickers follow the viewer: the images in the order they
were added (the first is the template, the next the target: a new layer
is selected when added, so the selection would swap them), and the
selected Points layer, else the first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox

from .controls import PRESET_KEY
from .outputs import is_output

if TYPE_CHECKING:
    import napari


class LayerPickers:
    """Template image, target image and points pickers for one viewer."""

    def __init__(self, viewer: napari.Viewer):
        self._viewer = viewer
        self.template = ComboBox(
            label="template image",
            choices=self._image_choices,
            tooltip="Image the points were clicked on",
        )
        self.image = ComboBox(
            label="target image",
            choices=self._image_choices,
            tooltip="Image to find the points in (may be the same layer)",
        )
        self.points = ComboBox(
            label="points",
            choices=self._points_choices,
            tooltip="Points of interest on the template image",
        )
        # Optional, never picked for the user: no mask until one is chosen.
        self.template_mask = ComboBox(
            label="template no-data",
            choices=self._mask_choices,
            tooltip="Labels layer over the template image: nonzero pixels "
            "hold no data and are ignored (NaN pixels always are)",
        )
        self.image_mask = ComboBox(
            label="target no-data",
            choices=self._mask_choices,
            tooltip="Labels layer over the target image: nonzero pixels "
            "hold no data and are ignored (NaN pixels always are)",
        )
        self.automatic = True
        self._picking = False
        for picker in self.widgets:
            picker.changed.connect(self._on_user_pick)
        self.template_mask.value = self.image_mask.value = None
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self._on_layers_changed)
        self._on_layers_changed()

    def for_task(self, tab: str) -> None:
        """The pickers as the tab `tab` needs them: tracking follows the
        template's own frames (a time-lapse), with no target."""
        track = tab == "Track"
        self.image.enabled = not track
        self.template.label = "time-lapse" if track else "template image"

    @property
    def widgets(self) -> tuple[ComboBox, ComboBox, ComboBox]:
        """The template, target and points pickers."""
        return self.template, self.image, self.points

    @property
    def masks(self) -> tuple[ComboBox, ComboBox]:
        """The template's and the target's no-data (Labels) pickers."""
        return self.template_mask, self.image_mask

    def _layers_of(self, kind: str) -> list[napari.layers.Layer]:
        import napari

        layer_type = getattr(napari.layers, kind)
        return [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, layer_type) and not is_output(layer)
        ]

    def _image_choices(self, widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self._layers_of("Image")]

    def _points_choices(self, widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self._layers_of("Points")]

    def _mask_choices(self, widget: Any = None) -> list[tuple[str, Any]]:
        labels = [(layer.name, layer) for layer in self._layers_of("Labels")]
        return [("none", None), *labels]

    def _on_layers_changed(self, event: Any = None) -> None:
        for layer in self._viewer.layers:
            layer.events.name.disconnect(self._on_renamed)
            layer.events.name.connect(self._on_renamed)
        self._on_renamed()

    def _on_renamed(self, event: Any = None) -> None:
        self._picking = True
        for picker in (*self.widgets, *self.masks):
            picker.reset_choices()
        self._picking = False
        if self.automatic:
            self._pick_defaults()

    def _on_user_pick(self, value: Any = None) -> None:
        # Once the user chooses a layer, layer changes no longer re-pick.
        if not self._picking:
            self.automatic = False

    def _pick_defaults(self) -> None:
        """Choose two different images in layer order when there are two,
        and a Points layer, the selected one first."""
        selected = list(self._viewer.layers.selection)
        images = [layer for _, layer in self._image_choices()]
        # Known answers (a sample's true positions) are never picked.
        points = [
            layer
            for _, layer in self._points_choices()
            if not layer.metadata.get(PRESET_KEY, {}).get("answers", False)
        ]
        points = [ly for ly in selected if ly in points] + points
        self._picking = True
        if images:
            self.template.value = images[0]
            others = [ly for ly in images if ly is not images[0]]
            self.image.value = (others or images)[0]
        if points:
            self.points.value = points[0]
        self._picking = False
