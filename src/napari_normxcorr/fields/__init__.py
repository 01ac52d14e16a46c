"""Dense displacement fields: vectors on a grid by passes of window
deformation (match_field), points on a grid, and the displacement between
matches interpolated on the pixel grid.
"""

from ._displacement import displacement_field
from ._field_result import FieldResult
from ._grid import grid_points
from ._match_field import match_field

__all__ = [
    "FieldResult",
    "displacement_field",
    "grid_points",
    "match_field",
]
