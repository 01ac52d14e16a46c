"""The motion gap's scores of 2-D template quadrants, as one compiled loop
(see ``_motions`` for what they mean and for the numpy path).

Its numpy path calls numpy a few hundred times per stack of windows, on
arrays of a few thousand pixels each: here each window's quadrants are
centred, judged and correlated at every offset in one pass over memory
that stays in cache. Importing this module compiles it (numba is then
required: see ``core._compiled``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..core._compiled import JIT_OPTIONS

jit = numba.njit(**JIT_OPTIONS)

# Offsets per axis the kernel correlates at (2 * REACH + 1): the loop
# keeps one running sum per offset of a row, seven, in registers.
SPAN = 7


@jit
def _row_products(part, region, top, left):
    """Sums of the products of `part` with the region's pixels from
    (top, left + dx), for dx in range(SPAN)."""
    h0, h1 = part.shape
    out = np.zeros(SPAN)
    for i in range(h0):
        row = part[i]
        # Slices starting at each offset: indices from a range are known
        # non-negative, so the loop over j vectorises.
        line = region[top + i, left : left + h1 + SPAN - 1]
        a0, a1, a2, a3 = (
            line[0:h1],
            line[1 : h1 + 1],
            line[2 : h1 + 2],
            line[3 : h1 + 3],
        )
        a4, a5, a6 = line[4 : h1 + 4], line[5 : h1 + 5], line[6 : h1 + 6]
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = 0.0
        for j in range(h1):
            p = row[j]
            s0 += p * a0[j]
            s1 += p * a1[j]
            s2 += p * a2[j]
            s3 += p * a3[j]
            s4 += p * a4[j]
            s5 += p * a5[j]
            s6 += p * a6[j]
        out[0] += s0
        out[1] += s1
        out[2] += s2
        out[3] += s3
        out[4] += s4
        out[5] += s5
        out[6] += s6
    return out


@jit
def _prefix_sums(region, sums, squares):
    """Summed-area tables of `region` and its squares, a zero row and
    column in front."""
    r0, r1 = region.shape
    sums[0, :] = 0.0
    squares[0, :] = 0.0
    for i in range(r0):
        run = 0.0
        run2 = 0.0
        sums[i + 1, 0] = 0.0
        squares[i + 1, 0] = 0.0
        for j in range(r1):
            value = region[i, j]
            run += value
            run2 += value * value
            sums[i + 1, j + 1] = sums[i, j + 1] + run
            squares[i + 1, j + 1] = squares[i, j + 1] + run2


@jit
def _box(table, y, x, h0, h1):
    """The sum over the box of (h0, h1) at (y, x) from its table."""
    return (
        table[y + h0, x + h1]
        - table[y, x + h1]
        - table[y + h0, x]
        + table[y, x]
    )


@jit
def _largest(values):
    top = 0.0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            top = max(top, abs(values[i, j]))
    return top


@jit
def _centre(raw, part):
    """`raw` minus its mean into `part`; returns the sums of the squares
    and fourth powers of the result."""
    h0, h1 = raw.shape
    mean = 0.0
    for i in range(h0):
        for j in range(h1):
            mean += raw[i, j]
    mean /= h0 * h1
    energy = 0.0
    quartic = 0.0
    for i in range(h0):
        for j in range(h1):
            value = raw[i, j] - mean
            part[i, j] = value
            square = value * value
            energy += square
            quartic += square * square
    return energy, quartic


@jit
def _texture(part):
    """The correlation of a centred part with itself one pixel on, the
    mean over its two axes (NaN when flat along one)."""
    h0, h1 = part.shape
    down = first = rest = 0.0
    for i in range(h0 - 1):
        for j in range(h1):
            down += part[i, j] * part[i + 1, j]
            first += part[i, j] * part[i, j]
            rest += part[i + 1, j] * part[i + 1, j]
    across = left = right = 0.0
    for i in range(h0):
        for j in range(h1 - 1):
            across += part[i, j] * part[i, j + 1]
            left += part[i, j] * part[i, j]
            right += part[i, j + 1] * part[i, j + 1]
    if first * rest <= 0 or left * right <= 0:
        return np.nan
    return 0.5 * (
        down / math.sqrt(first * rest) + across / math.sqrt(left * right)
    )


# Compiled on import, after the functions it calls.
@numba.njit(
    "void(float64[:, :, ::1], float64[:, :, ::1], int64[:, ::1], int64,"
    " int64, float64, float64[:, :, ::1], float64[:, ::1], float64[:, ::1])",
    **JIT_OPTIONS,
)
def part_scores(
    templates, regions, starts, h0, h1, flat, scores, textures, spreads
):
    """For each template (n, m0, m1) and each part of shape (h0, h1) at
    `starts` (P, 2): its NCC with its region (n, r0, r1; centred) at the
    SPAN² offsets (into `scores`, n × P × SPAN², NaN where the part or
    the window is flat by `flat`), its texture and its spread (n × P)."""
    n, count = templates.shape[0], float(h0 * h1)
    r0, r1 = regions.shape[1], regions.shape[2]
    part = np.empty((h0, h1))
    sums = np.empty((r0 + 1, r1 + 1))
    squares = np.empty((r0 + 1, r1 + 1))
    for k in range(n):
        region = regions[k]
        _prefix_sums(region, sums, squares)
        window_floor = count * (flat * _largest(region)) ** 2
        for q in range(starts.shape[0]):
            sy, sx = starts[q, 0], starts[q, 1]
            raw = templates[k, sy : sy + h0, sx : sx + h1]
            energy, quartic = _centre(raw, part)
            part_floor = count * (flat * _largest(raw)) ** 2
            textures[k, q] = _texture(part)
            spreads[k, q] = (
                energy * energy / quartic if quartic > 0 else np.nan
            )
            for dy in range(SPAN):
                products = _row_products(part, region, sy + dy, sx)
                for dx in range(SPAN):
                    y, x = sy + dy, sx + dx
                    total = _box(sums, y, x, h0, h1)
                    window = (
                        _box(squares, y, x, h0, h1) - total * total / count
                    )
                    score = np.nan
                    if window > window_floor and energy > part_floor:
                        score = products[dx] / math.sqrt(energy * window)
                    scores[k, q, dy * SPAN + dx] = score
