"""A warp fit's residuals for 2-D windows, as one compiled loop (see
``_warp_data.residuals`` for what they are and for the numpy path).

The numpy path resamples the crops by `scipy.ndimage.map_coordinates`
and then makes a score of passes over the samples; here each template's
pixels are warped, sampled, centred and compared in three passes over
arrays that stay in cache. The crops' spline coefficients are computed
here too, every column of a crop in each step of the recursive filter.
Importing this module compiles it (numba is then required: see
``core._compiled``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..core._compiled import JIT_OPTIONS

jit = numba.njit(**JIT_OPTIONS)

# Cubic B-spline samples read 2 pixels either way (``_warp_data._TAPS``).
TAPS = 2


@jit
def _bspline(coefficients, top, y, x):
    """The cubic B-spline with `coefficients` at (y, x) of the crop whose
    first row is `top` (all 16 taps inside the crop)."""
    fy, fx = math.floor(y), math.floor(x)
    y0, y1, y2, y3 = _weights(y - fy)
    x0, x1, x2, x3 = _weights(x - fx)
    row, col = top + int(fy) - 1, int(fx) - 1
    return (
        y0 * _across(coefficients[row], col, x0, x1, x2, x3)
        + y1 * _across(coefficients[row + 1], col, x0, x1, x2, x3)
        + y2 * _across(coefficients[row + 2], col, x0, x1, x2, x3)
        + y3 * _across(coefficients[row + 3], col, x0, x1, x2, x3)
    )


@jit
def _across(line, col, x0, x1, x2, x3):
    """Four taps of one row of coefficients from `col`, weighted."""
    return (
        x0 * line[col]
        + x1 * line[col + 1]
        + x2 * line[col + 2]
        + x3 * line[col + 3]
    )


@jit
def _weights(t):
    """The four cubic B-spline weights at fraction `t` past a knot."""
    s = 1.0 - t
    first = s * s * s / 6.0
    second = (4.0 - 6.0 * t * t + 3.0 * t * t * t) / 6.0
    last = t * t * t / 6.0
    return first, second, 1.0 - first - second - last, last


@jit
def _sample(coefficients, shape, crop, holes, unreliable, y, x, step):
    """The crop's value at (y, x) rounded to `step`, or NaN where a tap
    would leave it or read a pixel without data."""
    s0, s1 = shape[0], shape[1]
    inside = TAPS <= y <= s0 - 1 - TAPS and TAPS <= x <= s1 - 1 - TAPS
    if not inside:
        return np.nan
    if holes[crop]:
        near_y = min(max(int(np.rint(y)), 0), s0 - 1)
        near_x = min(max(int(np.rint(x)), 0), s1 - 1)
        if unreliable[crop, near_y, near_x]:
            return np.nan
    # `step` is a power of two: multiplying by its inverse is exact.
    inverse = 1.0 / step
    y, x = np.rint(y * inverse) * step, np.rint(x * inverse) * step
    return _bspline(coefficients, crop * s0, y, x)


# The pole of the cubic B-spline's prefilter, and its gain.
_POLE = math.sqrt(3.0) - 2.0
_GAIN = (1.0 - _POLE) * (1.0 - 1.0 / _POLE)


@jit
def _filter_columns(box, first):
    """Cubic B-spline coefficients along the first axis of `box`, in
    place, mirrored at its ends (scipy.ndimage.spline_filter1d's mode
    'mirror'); all columns in each step, which vectorises. `first` is
    scratch, a row long."""
    n, m, z = box.shape[0], box.shape[1], _POLE
    # Causal start: the mirrored column's infinite sum, in closed form.
    last = z ** (n - 1)
    for j in range(m):
        first[j] = box[0, j] + last * box[n - 1, j]
    power = z
    for i in range(1, n - 1):
        for j in range(m):
            first[j] += power * (box[i, j] + last * box[n - 1 - i, j])
        power *= z
    for j in range(m):
        box[0, j] = _GAIN * first[j] / (1.0 - last * last)
    for i in range(1, n):
        for j in range(m):
            box[i, j] = _GAIN * box[i, j] + z * box[i - 1, j]
    end = z / (z * z - 1.0)
    for j in range(m):
        box[n - 1, j] = (z * box[n - 2, j] + box[n - 1, j]) * end
    for i in range(n - 2, -1, -1):
        for j in range(m):
            box[i, j] = z * (box[i + 1, j] - box[i, j])


@numba.njit("void(float64[:, :, ::1])", **JIT_OPTIONS)
def spline_coefficients(boxes):
    """Cubic B-spline coefficients of each 2-D box in place, along both
    axes (mode 'mirror'), as ``scipy.ndimage.spline_filter1d`` twice
    (sides of 2 pixels or more: a crop has 39 or more)."""
    rows, columns = boxes.shape[1], boxes.shape[2]
    turned = np.empty((columns, rows))
    scratch = np.empty(max(rows, columns))
    for k in range(boxes.shape[0]):
        box = boxes[k]
        _filter_columns(box, scratch[:columns])
        for i in range(rows):
            for j in range(columns):
                turned[j, i] = box[i, j]
        _filter_columns(turned, scratch[:rows])
        for i in range(rows):
            for j in range(columns):
                box[i, j] = turned[j, i]


# Compiled on import, after the functions it calls.
@numba.njit(
    "void(float64[:, ::1], int64[::1], int64[::1], float64[:, :, ::1],"
    " float64[:, ::1], float64[:, ::1], boolean[:, ::1], float64[:, ::1],"
    " boolean[::1], boolean[:, :, ::1], float64, float64[:, ::1],"
    " float64[:, ::1], float64[::1])",
    **JIT_OPTIONS,
)
def warp_residuals(
    coefficients,
    shape,
    crops,
    rows,
    monomials,
    start,
    kept,
    values,
    holes,
    unreliable,
    step,
    residual,
    weight,
    score,
):
    """ZNSSD residuals (k, M), weights and ZNCC (k,) of the templates'
    `values` warped by `rows` (k, 2, S) into their `crops`, as
    ``_warp_data.residuals`` (its coordinates rounded to `step`)."""
    count = monomials.shape[0]
    target = np.empty(count)
    for k in range(crops.shape[0]):
        crop = crops[k]
        used = ref_sum = tgt_sum = 0.0
        for m in range(count):
            y, x = start[crop, 0], start[crop, 1]
            along_y = along_x = 0.0
            for s in range(monomials.shape[1]):
                along_y += rows[k, 0, s] * monomials[m, s]
                along_x += rows[k, 1, s] * monomials[m, s]
            y += along_y
            x += along_x
            value = np.nan
            if kept[k, m]:
                value = _sample(
                    coefficients,
                    shape,
                    crop,
                    holes,
                    unreliable,
                    y,
                    x,
                    step,
                )
            if math.isnan(value):
                weight[k, m] = 0.0
                target[m] = 0.0
            else:
                weight[k, m] = 1.0
                target[m] = value
                used += 1.0
                ref_sum += values[k, m]
                tgt_sum += value
        used = max(used, 1.0)
        ref_mean, tgt_mean = ref_sum / used, tgt_sum / used
        ref_energy = tgt_energy = product = 0.0
        for m in range(count):
            ref = (values[k, m] - ref_mean) * weight[k, m]
            tgt = (target[m] - tgt_mean) * weight[k, m]
            residual[k, m] = ref
            target[m] = tgt
            ref_energy += ref * ref
            tgt_energy += tgt * tgt
            product += ref * tgt
        ref_energy, tgt_energy = math.sqrt(ref_energy), math.sqrt(tgt_energy)
        gain = ref_energy / tgt_energy if tgt_energy > 0 else 0.0
        for m in range(count):
            residual[k, m] -= gain * target[m]
        denominator = ref_energy * tgt_energy
        score[k] = product / denominator if denominator > 0 else np.nan
