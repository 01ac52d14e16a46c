"""The layer pickers: which layers are offered, and which picked.

Each tab offers the layers that fit its task: Track a time-lapse (an
image whose first axis is time: `axes.first_axis_kind`, unlabelled taken
as time) and no target; Match, Register and Dense field 2-D images and
volumes (first axis not time; unlabelled taken as depth). Our own output
layers and layers that hold known answers (metadata
``{"napari-normxcorr": {"answers": True}}``) are never offered as points.
Switching tabs keeps a choice that still fits, and brings back the one
made on a tab of the same kind. Until the user chooses a layer
(or runs), the pickers follow the viewer: the images in the order they
were added (the first is the template, the next the target: a new layer
is selected when added, so the selection would swap them), and the
selected Points layer, else the first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox

from .axes import DEPTH, FROM_LABELS, TIME, first_axis_kind, spatial_ndim
from .controls import PRESET_KEY
from .outputs import is_output

if TYPE_CHECKING:
    import napari


class LayerPickers:
    """Template image, target image and points pickers for one viewer.

    `first_axis` gives the "first axis is" control's choice (one of
    `axes.FIRST_AXIS_CHOICES`), which overrides the layers' axis labels.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        first_axis: Callable[[], str] = lambda: FROM_LABELS,
    ):
        self._viewer = viewer
        self._first_axis = first_axis
        self.track = False
        # The template last chosen on a tab that tracks, and on one that
        # matches pairs: brought back on a tab of the same kind.
        self._kept: dict[bool, Any] = {}
        self.template = ComboBox(
            label="template image",
            choices=self._template_choices,
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
        if track == self.track:
            return
        self._kept[self.track] = self.template.value
        self.track = track
        self.image.enabled = not track
        self.template.label = "time-lapse" if track else "template image"
        self.refilter(self._kept.get(track))

    def refilter(self, wanted: Any = None) -> None:
        """Offer again what fits the task (the first axis may have been
        said otherwise): the current template stays when it fits, else
        `wanted` when it does."""
        current = self.template.value
        self._on_renamed()
        choices = self.template.choices
        for layer in (current, wanted):
            if layer is None or layer not in choices:
                continue
            if self.template.value is not layer:
                self._picking = True
                try:
                    self.template.value = layer
                finally:
                    self._picking = False
            return

    def fits(self, layer: napari.layers.Image, track: bool) -> bool:
        """Whether the image `layer` fits a tab that tracks (`track`: a
        time-lapse) or one that matches pairs: not a time-lapse, unless
        another time-lapse of its shape is open (two series matched frame
        by frame, e.g. two channels)."""
        if track:
            return self._kind(layer, TIME) == TIME
        if self._kind(layer, DEPTH) != TIME:
            return True
        return any(
            other is not layer
            and other.data.shape == layer.data.shape
            and self._kind(other, DEPTH) == TIME
            for other in self._layers_of("Image")
        )

    def _kind(self, layer: napari.layers.Image, unlabelled: str) -> Any:
        """What the first axis of `layer` is (see `first_axis_kind`)."""
        return first_axis_kind(
            self._viewer, layer, self._first_axis(), unlabelled
        )

    def has_still_images(self) -> bool:
        """Whether an image is not a time-lapse (a pair tab's own kind)."""
        return any(
            self._kind(layer, DEPTH) != TIME
            for layer in self._layers_of("Image")
        )

    def has_stacks(self) -> bool:
        """Whether an image has an axis in front of (rows, cols)."""
        return any(spatial_ndim(ly) >= 3 for ly in self._layers_of("Image"))

    def fitting(self, track: bool) -> bool:
        """Whether some image fits a tab that tracks (`track`), or one
        that matches pairs."""
        return bool(self._image_choices(track=track))

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

    def _template_choices(self, widget: Any = None) -> list[tuple[str, Any]]:
        return self._image_choices(track=self.track)

    def _image_choices(
        self, widget: Any = None, track: bool = False
    ) -> list[tuple[str, Any]]:
        """Images that fit the task; the target's never tracks."""
        return [
            (layer.name, layer)
            for layer in self._layers_of("Image")
            if self.fits(layer, track)
        ]

    def _points_choices(self, widget: Any = None) -> list[tuple[str, Any]]:
        # Known answers (a sample's true positions) are never matched.
        return [
            (layer.name, layer)
            for layer in self._layers_of("Points")
            if not layer.metadata.get(PRESET_KEY, {}).get("answers", False)
        ]

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
        templates = [layer for _, layer in self._template_choices()]
        images = [layer for _, layer in self._image_choices()]
        points = [layer for _, layer in self._points_choices()]
        points = [ly for ly in selected if ly in points] + points
        self._picking = True
        if templates:
            self.template.value = templates[0]
        if images:
            others = [ly for ly in images if ly not in templates[:1]]
            self.image.value = (others or images)[0]
        if points:
            self.points.value = points[0]
        self._picking = False
