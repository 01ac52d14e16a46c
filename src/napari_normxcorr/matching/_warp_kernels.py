"""A warp fit's residuals for 2-D windows, as one compiled loop (see
``_warp_data.residuals`` for what they are and for the numpy path).

The numpy path resamples the crops by `scipy.ndimage.map_coordinates`
and then makes a score of passes over the samples; here each template's
pixels are warped, tested, sampled and compared in a few passes over
arrays of one template that stay in cache. The crops' spline
coefficients are computed here too, every column of a crop in each step
of the recursive filter.
Importing this module compiles it (numba is then required: see
``core._compiled``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..core._compiled import JIT_OPTIONS
from ._warp_data import TAPS

jit = numba.njit(**JIT_OPTIONS)


@jit
def _weights(t):
    """The four cubic B-spline weights at fraction `t` past a knot."""
    s = 1.0 - t
    first = s * s * s / 6.0
    second = (4.0 - 6.0 * t * t + 3.0 * t * t * t) / 6.0
    last = t * t * t / 6.0
    return first, second, 1.0 - first - second - last, last


@jit
def _place(rows, monomials, origin, step, exact, knots, fractions):
    """Where the warp `rows` (2, S) takes each pixel (its `monomials`)
    from `origin`: exactly (into `exact`, 2 × M) and rounded to `step`,
    as the knot below (`knots`) and the fraction past it (`fractions`).
    Branch-free, so that it vectorises."""
    count = monomials.shape[0]
    inverse = 1.0 / step  # a power of two: exact
    for m in range(count):
        for axis in range(2):
            along = 0.0
            for q in range(monomials.shape[1]):
                along += rows[axis, q] * monomials[m, q]
            along += origin[axis]
            exact[axis, m] = along
            rounded = np.rint(along * inverse) * step
            knot = np.floor(rounded)
            knots[axis, m] = knot
            fractions[axis, m] = rounded - knot


@jit
def _reliable(exact, shape, crop, holes, unreliable, kept, out):
    """Whether each sample's taps all lie in the crop and off its holes
    (`unreliable`, read only where `holes` says it has some), and the
    pixel is `kept`."""
    last_row, last_column = shape[0] - 1 - TAPS, shape[1] - 1 - TAPS
    holed = holes[crop]
    for m in range(exact.shape[1]):
        y, x = exact[0, m], exact[1, m]
        inside = TAPS <= y <= last_row and TAPS <= x <= last_column
        if inside and holed:
            near_y = min(max(int(np.rint(y)), 0), shape[0] - 1)
            near_x = min(max(int(np.rint(x)), 0), shape[1] - 1)
            inside = not unreliable[crop, near_y, near_x]
        out[m] = inside and kept[m]


@jit
def _sample(coefficients, top, knots, fractions, reliable, target):
    """The crop (its spline coefficients from row `top`) at each reliable
    sample into `target` (0 elsewhere)."""
    for m in range(target.shape[0]):
        if not reliable[m]:
            target[m] = 0.0
            continue
        y0, y1, y2, y3 = _weights(fractions[0, m])
        x0, x1, x2, x3 = _weights(fractions[1, m])
        row = top + int(knots[0, m]) - 1
        column = int(knots[1, m]) - 1
        value = 0.0
        for i, along in enumerate((y0, y1, y2, y3)):
            line = coefficients[row + i]
            value += along * (
                x0 * line[column]
                + x1 * line[column + 1]
                + x2 * line[column + 2]
                + x3 * line[column + 3]
            )
        target[m] = value


@jit
def _compare(values, target, weight, residual):
    """ZNSSD residuals of `values` against `target` over the `weight`ed
    pixels (into `residual`; `target` is overwritten), and their ZNCC."""
    count = values.shape[0]
    used = ref_sum = tgt_sum = 0.0
    for m in range(count):
        used += weight[m]
        ref_sum += values[m] * weight[m]
        tgt_sum += target[m] * weight[m]
    used = max(used, 1.0)
    ref_mean, tgt_mean = ref_sum / used, tgt_sum / used
    ref_energy = tgt_energy = product = 0.0
    for m in range(count):
        ref = (values[m] - ref_mean) * weight[m]
        tgt = (target[m] - tgt_mean) * weight[m]
        residual[m] = ref
        target[m] = tgt
        ref_energy += ref * ref
        tgt_energy += tgt * tgt
        product += ref * tgt
    ref_energy, tgt_energy = math.sqrt(ref_energy), math.sqrt(tgt_energy)
    gain = ref_energy / tgt_energy if tgt_energy > 0 else 0.0
    for m in range(count):
        residual[m] -= gain * target[m]
    denominator = ref_energy * tgt_energy
    return product / denominator if denominator > 0 else np.nan


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
    exact, knots, fractions = np.empty((3, 2, count))
    reliable = np.empty(count, dtype=np.bool_)
    target = np.empty(count)
    for k in range(crops.shape[0]):
        crop = crops[k]
        origin = start[crop]
        _place(rows[k], monomials, origin, step, exact, knots, fractions)
        _reliable(exact, shape, crop, holes, unreliable, kept[k], reliable)
        top = crop * shape[0]
        _sample(coefficients, top, knots, fractions, reliable, target)
        for m in range(count):
            weight[k, m] = 1.0 if reliable[m] else 0.0
        score[k] = _compare(values[k], target, weight[k], residual[k])
