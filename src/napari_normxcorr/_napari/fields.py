"""The widget's Dense field section: points on a grid, vectors coloured by
magnitude or status with a legend, and the interpolated field as images.

The grid is made in template pixels (`grid_points`) and added as a Points
layer in world coordinates; the field lives on the template's pixel grid,
so its layers are placed like the template layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton, SpinBox

from ..fields._displacement import displacement_field, field_magnitude
from ..fields._grid import grid_points
from .field_run import FieldRun
from .layers import (
    convert,
    data_to_world,
    image_array,
    set_or_add,
    world_to_data,
)
from .outputs import (
    MAGNITUDE_COLORMAP,
    SUFFIXES,
    VECTOR_COLORINGS,
    is_output,
    magnitude_limits,
    pixel_size,
    units_for,
)
from .overlay import placement
from .session import MatchSession

if TYPE_CHECKING:
    import napari
    from qtpy.QtWidgets import QLabel, QWidget

# Shapes that enclose an area; lines and paths select nothing.
AREA_SHAPES = ("rectangle", "polygon", "ellipse")
GRID_NAME = "grid points"
_GRID_STYLE = {
    "face_color": "transparent",
    "border_color": "cyan",
    "border_width": 0.15,
}
_WHOLE_IMAGE = "whole image"


def _notify(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)


def inside_shapes(
    points: np.ndarray,
    template_layer: napari.layers.Image,
    shapes_layer: napari.layers.Shapes,
) -> np.ndarray:
    """Which template-pixel `points` fall inside a rectangle, polygon or
    ellipse of `shapes_layer` (compared in world coordinates).

    Raises
    ------
    ValueError
        When the Shapes layer has another number of dimensions.
    """
    if shapes_layer.ndim != template_layer.ndim:
        raise ValueError(
            f"The Shapes layer is {shapes_layer.ndim}-D but the template "
            f"is {template_layer.ndim}-D."
        )
    inside = np.zeros(len(points), dtype=bool)
    area = [
        i
        for i, kind in enumerate(shapes_layer.shape_type)
        if kind in AREA_SHAPES
    ]
    if not area or not len(points):
        return inside
    world = convert(points, data_to_world(template_layer))
    index = np.rint(convert(world, world_to_data(shapes_layer))).astype(int)
    within = (index >= 0).all(axis=1)
    if not within.any():
        return inside
    # Rasterised by napari itself, so every kind of shape is exact.
    masks = shapes_layer.to_masks(index[within].max(axis=0) + 1)
    covered = masks[area].any(axis=0)
    inside[within] = covered[tuple(index[within].T)]
    return inside


def field_names(points_name: str, d: int) -> list[tuple[str, str]]:
    """(output key, layer name) of each field component, then of the
    magnitude."""
    axes = ["row", "col"] if d == 2 else ["z", "row", "col"]
    keys = [f"field {axis}" for axis in axes] + ["field magnitude"]
    return [(key, points_name + SUFFIXES[key]) for key in keys]


class Legend:
    """What the vector colours mean: a colorbar with its range in px (the
    status colours have the widget's one legend, always shown)."""

    def __init__(self) -> None:
        from qtpy.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

        self.native: QWidget = QWidget()
        self.low: QLabel = QLabel()
        self.bar: QLabel = QLabel()
        self.high: QLabel = QLabel()
        self._colorbar = QWidget()
        row = QHBoxLayout(self._colorbar)
        row.setContentsMargins(0, 0, 0, 0)
        for part in (self.low, self.bar, self.high):
            row.addWidget(part)
        row.addStretch()
        column = QVBoxLayout(self.native)
        column.setContentsMargins(4, 0, 4, 4)
        column.addWidget(self._colorbar)
        self.bar.setPixmap(_gradient_pixmap(MAGNITUDE_COLORMAP))
        self.show("plain")

    def show(
        self, coloring: str, limits: tuple[float, float] = (0, 1)
    ) -> None:
        """Show the legend of `coloring` (nothing for plain)."""
        self._colorbar.setVisible(coloring == "magnitude")
        self.low.setText(f"{limits[0]:.2f} px")
        self.high.setText(f"{limits[1]:.2f} px")


def _gradient_pixmap(colormap: str, size: tuple[int, int] = (140, 14)) -> Any:
    """A horizontal strip of `colormap`, low values on the left."""
    from napari.utils.colormaps import ensure_colormap
    from qtpy.QtGui import QImage, QPixmap

    width, height = size
    colors = ensure_colormap(colormap).map(np.linspace(0, 1, width))
    strip = (colors * 255).astype(np.uint8)
    pixels = np.broadcast_to(strip, (height, width, 4)).tobytes()
    image = QImage(
        pixels, width, height, 4 * width, QImage.Format.Format_RGBA8888
    )
    # QImage borrows the buffer: copy before `pixels` goes.
    return QPixmap.fromImage(image.copy())


class FieldSection(Container):
    """Grid points, vector colouring and the dense field of the matches.

    Parameters
    ----------
    session : MatchSession
        Holds the matches whose field is shown.
    viewer : napari.Viewer
        Where the grid points and the field layers are added.
    template_layer : callable
        The template image picked in the widget (or None).
    use_points : callable
        Picks a Points layer as the widget's points to match.
    redraw_vectors : callable
        Draws the displacement vectors again (another colouring).
    image_layer : callable, optional
        The target image picked in the widget (or None): with the
        template, what "Run dense field" (match_field) matches.
    """

    def __init__(
        self,
        session: MatchSession,
        viewer: napari.Viewer,
        template_layer: Callable[[], napari.layers.Image | None],
        use_points: Callable[[napari.layers.Points], None],
        redraw_vectors: Callable[[], None],
        image_layer: Callable[[], napari.layers.Image | None] = lambda: None,
    ):
        super().__init__()
        self._session = session
        self._viewer = viewer
        self._template_layer = template_layer
        self._use_points = use_points
        self._redraw_vectors = redraw_vectors
        # The margin follows the template radius until the user sets it.
        self._margin_chosen = False
        self._setting_margin = False
        self._add_controls()
        self.legend = Legend()
        self.native.layout().addWidget(self.legend.native)
        # A field of its own, by passes of window deformation (PIV, DIC),
        # beside the field of the matched points above.
        self.dense = FieldRun(
            viewer, lambda: (template_layer(), image_layer()), _notify
        )
        self.native.layout().addWidget(self.dense.native)
        self._add_callbacks()

    def _add_controls(self) -> None:
        self.spacing = SpinBox(
            value=20,
            min=1,
            max=100_000,
            label="grid spacing (px)",
            tooltip="Distance between neighbouring grid points",
        )
        self.margin = SpinBox(
            value=15,
            min=0,
            max=100_000,
            label="grid margin (px)",
            tooltip="Least distance to the image border; the template "
            "radius keeps every template window whole",
        )
        self.region = ComboBox(
            label="inside",
            choices=self._region_choices,
            tooltip="Only inside the rectangles, polygons and ellipses of "
            "a Shapes layer, or the whole image",
        )
        self.grid_button = PushButton(
            text="Points on a grid",
            tooltip="Add a Points layer on a grid over the template image "
            "and pick it, ready to Run",
        )
        self.field_button = PushButton(
            text="Show field",
            enabled=False,
            tooltip="Interpolate the ok matches' displacement on the "
            "template's pixel grid (after a Run)",
        )
        self.coloring = ComboBox(
            choices=VECTOR_COLORINGS,
            value="plain",
            label="vectors coloured by",
            tooltip="Colour the displacement vectors by their length (a "
            "colour bar in px), by status, or plain",
        )
        self.extend(
            [
                self.spacing,
                self.margin,
                self.region,
                self.grid_button,
                self.field_button,
                self.coloring,
            ]
        )

    def _add_callbacks(self) -> None:
        # QPushButton.clicked passes a bool: wrap the calls.
        self.grid_button.changed.connect(lambda: self.add_grid())
        self.field_button.changed.connect(lambda: self.show_field())
        self.margin.changed.connect(self._on_margin_changed)
        self.coloring.changed.connect(self._on_coloring_changed)
        self._session.changed.connect(self._on_changed)
        events = self._viewer.layers.events
        for event in (events.inserted, events.removed):
            event.connect(self._on_layers_changed)

    def _region_choices(self, widget: Any = None) -> list[tuple[str, Any]]:
        import napari

        shapes = [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, napari.layers.Shapes)
        ]
        return [(_WHOLE_IMAGE, _WHOLE_IMAGE), *shapes]

    def _on_layers_changed(self, event: Any = None) -> None:
        self.region.reset_choices()

    # --- the grid -----------------------------------------------------

    def follow_template_radius(self, radius: int) -> None:
        """The default margin: the template radius, until the user sets
        the margin."""
        if not self._margin_chosen:
            self._setting_margin = True
            self.margin.value = radius
            self._setting_margin = False

    def _on_margin_changed(self, value: int) -> None:
        if not self._setting_margin:
            self._margin_chosen = True

    def add_grid(self) -> napari.layers.Points | None:
        """Add a Points layer on a grid over the template (inside the
        chosen Shapes layer's areas) and pick it as the points to match.

        Returns the layer, or None when there is no grid to make (a
        notification says why).
        """
        from napari.utils.notifications import show_warning

        template = self._template_layer()
        if template is None or template not in self._viewer.layers:
            show_warning("Choose a template image first.")
            return None
        try:
            points = self._grid_pixels(template)
        except ValueError as error:
            show_warning(str(error))
            return None
        world = convert(points, data_to_world(template))
        layer = self._viewer.add_points(
            world,
            name=GRID_NAME,
            size=max(2.0, self.spacing.value / 4) * pixel_size(template),
            units=units_for(template, world.shape[1]),
            **_GRID_STYLE,
        )
        self._use_points(layer)
        return layer

    def _grid_pixels(self, template: napari.layers.Image) -> np.ndarray:
        """The grid points in template pixels, inside the chosen areas."""
        shape = image_array(template).shape
        points = grid_points(
            shape, self.spacing.value, margin=self.margin.value
        )
        region = self.region.value
        if region is not None and region != _WHOLE_IMAGE:
            points = points[inside_shapes(points, template, region)]
        if not len(points):
            raise ValueError(
                "No grid point fits: reduce the spacing or the margin, or "
                "draw larger shapes."
            )
        return points

    # --- vector colours -----------------------------------------------

    def _on_coloring_changed(self, value: str) -> None:
        self._redraw_vectors()
        self._on_changed()

    def _on_changed(self, rows: list[int] | None = None) -> None:
        result = self._session.result
        limits = (0.0, 1.0) if result is None else magnitude_limits(result)
        self.legend.show(self.coloring.value, limits)
        self.field_button.enabled = result is not None

    # --- the field ----------------------------------------------------

    def show_field(self) -> list[napari.layers.Image] | None:
        """Add or update the field's component and magnitude layers, on
        the template's pixel grid; None when there is no field (a
        notification says why)."""
        from napari.utils.notifications import show_warning

        try:
            field, template = self._field()
        except ValueError as error:
            show_warning(str(error))
            return None
        assert self._session.inputs is not None  # _field checked it
        name = self._session.inputs.points_layer.name
        names = field_names(name, len(field))
        images = [*field, field_magnitude(field)]
        selection = self._viewer.layers.selection
        active = selection.active
        drawn = [
            self._draw(layer_name, data, key == "field magnitude", template)
            for (key, layer_name), data in zip(names, images)
        ]
        # Added layers do not take over the layer the user works on.
        if active is not None and active in self._viewer.layers:
            selection.active = active
        return drawn

    def _field(self) -> tuple[np.ndarray, napari.layers.Image]:
        """The session's field and its template layer, or ValueError."""
        inputs, result = self._session.inputs, self._session.result
        if inputs is None or result is None:
            raise ValueError("Run the matching first: there are no matches.")
        if inputs.template_layer not in self._viewer.layers:
            raise ValueError("The template layer was removed: run again.")
        shape = tuple(inputs.template.shape)
        if len(shape) != len(inputs.options.search_radius):
            raise ValueError(
                "A dense field needs matching along every axis of the "
                "template (no time points or slices)."
            )
        return displacement_field(result, shape), inputs.template_layer

    def _draw(
        self,
        name: str,
        data: np.ndarray,
        magnitude: bool,
        template: napari.layers.Image,
    ) -> napari.layers.Image:
        """Add or update one field layer, placed like the template."""
        where = placement(template)
        largest = float(np.nanmax(np.abs(data), initial=0.0))
        # A guard against a zero range (no motion at all).
        largest = max(largest, 1e-6)
        limits = (0.0, largest) if magnitude else (-largest, largest)
        added = name not in self._viewer.layers
        layer = set_or_add(
            self._viewer,
            name,
            "image",
            data,
            update=("contrast_limits", *where),
            contrast_limits=limits,
            colormap=MAGNITUDE_COLORMAP if magnitude else "PiYG",
            opacity=0.6,
            visible=magnitude,
            **where,
        )
        if added:
            self._place_above_images(layer)
        return layer

    def _place_above_images(self, layer: napari.layers.Layer) -> None:
        """Just above the topmost input image, below points and vectors."""
        import napari

        layers = self._viewer.layers
        tops = [
            i
            for i, other in enumerate(layers)
            if isinstance(other, napari.layers.Image) and not is_output(other)
        ]
        if tops:
            layers.move(layers.index(layer), tops[-1] + 1)
