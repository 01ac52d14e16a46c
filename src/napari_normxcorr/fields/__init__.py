"""Dense displacement fields: points on a grid, and the displacement
between the matches interpolated on the pixel grid.
"""

from ._displacement import displacement_field
from ._grid import grid_points

__all__ = [
    "displacement_field",
    "grid_points",
]
