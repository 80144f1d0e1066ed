"""The numba half of `stream.lines`: event records -> JSON lines in a byte buffer, one pass.

Every piece of text is either a literal (pre-encoded once per encoder: the line's fixed parts,
the keys of `values`, zone names, constants), an entry of a text table (symbols, times, float
texts from polars, odd values formatted by the Event path), or a number written here (seq,
slope signs, counts, and floats of at most 15 significant digits in [1e-4, 1e15)).

A rule's `values` object is a small program: rows of (op, a, b, c) run for each of its records.
`plan` walks the records once to collect what needs formatting outside (floats, times, odd
values) in the order `emit` will consume it; `emit` writes the lines (or, dry, counts their bytes).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# ops of a values program: (op, a, b, c)
LIT, NUM, PCT, SIGN, INT, ZONE, TIME, DIRECTION = range(8)  # LIT: literal a; ZONE: col a, names b.. b+c
# literals every encoder has, at these indices of its literal table
HEAD, ID, BAR, TIMEKEY, QUOTE, NULL, UP, DOWN, TAIL, TAIL_LATE, ZERO, MINUS_ZERO = range(12)
FIXED = 12

PAD = 8  # spare bytes at the end of every text table
_I64 = 2.0**63
_P10I = np.array([10**i for i in range(19)], dtype=np.int64)
_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8)  # "00" .. "99"
_P10 = np.array([10.0**i for i in range(23)])  # exact
_POW = np.array([float(f"1e{e}") for e in range(-4, 16)])  # _POW[e + 4]: the double nearest 10**e


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def short(ax):
    """(k, p) with ax == k / 10**p, k of at most 15 digits and no trailing zero (p > 0): the
    shortest round-trip decimal of ax in [1e-4, 1e15); (-1, 0) when ax is not such a number.
    Two decimals of at most 15 significant digits never round to the same double, so the one
    found is the shortest there is."""
    if not (1e-4 <= ax < 1e15):
        return -1, 0
    e = min(max(int(math.floor((math.frexp(ax)[1] - 1) * 0.3010299956639812)), -4), 14)  # log10(ax) - (0..1)
    if e < 14 and ax >= _POW[e + 5]:  # 10**(e+1) <= ax
        e += 1
    p = 14 - e
    k = np.int64(ax * _P10[p] + 0.5)
    if k >= 1_000_000_000_000_000 or k / _P10[p] != ax:
        return -1, 0
    if p >= 8 and k % 100_000_000 == 0:
        k //= 100_000_000
        p -= 8
    if p >= 4 and k % 10_000 == 0:
        k //= 10_000
        p -= 4
    if p >= 2 and k % 100 == 0:
        k //= 100
        p -= 2
    if p >= 1 and k % 10 == 0:
        k //= 10
        p -= 1
    return k, p


@intrinsic
def _move8(typingctx, dst, dpos, src, spos):
    """Copies the 8 bytes at src[spos:] to dst[dpos:] (one unaligned load and store, unchecked)."""
    sig = types.void(dst, types.intp, src, types.intp)

    def codegen(context, builder, signature, args):
        d = context.make_array(signature.args[0])(context, builder, args[0])
        s = context.make_array(signature.args[2])(context, builder, args[2])
        dp = builder.gep(d.data, [args[1]])
        sp = builder.gep(s.data, [args[3]])
        cgutils.raw_memcpy(builder, dp, sp, ir.Constant(ir.IntType(64), 8), 1)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _digits(v):
    """Digits of v >= 0."""
    d = 1
    while d < 19 and v >= _P10I[d]:
        d += 1
    return d


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _uint(buf, pos, v, d, dry):
    """Writes v >= 0 in d digits (zero-padded) at pos."""
    if not dry:
        i = pos + d
        while i - pos >= 2:
            r = v % 100
            v //= 100
            buf[i - 1] = _PAIRS[2 * r + 1]
            buf[i - 2] = _PAIRS[2 * r]
            i -= 2
        if i > pos:
            buf[pos] = 48 + v % 10
    return pos + d


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _int(buf, pos, v, dry):
    if v < 0:
        if not dry:
            buf[pos] = 45
        pos += 1
        v = -v
    return _uint(buf, pos, v, _digits(v), dry)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _copy(buf, pos, data, lo, hi, dry):
    """Copies data[lo:hi] to buf[pos:]: 8 bytes at a time where buf has room for the last
    (every table ends in PAD spare bytes, so its reads stay inside it)."""
    n = hi - lo
    if not dry:
        if pos + n + PAD <= len(buf):
            for i in range(0, n, 8):
                _move8(buf, pos + i, data, lo + i)
        else:
            for i in range(n):
                buf[pos + i] = data[lo + i]
    return pos + n


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _short_text(buf, pos, neg, k, p, dry):
    if neg:
        if not dry:
            buf[pos] = 45
        pos += 1
    d = _digits(k)
    if p == 0:
        pos = _uint(buf, pos, k, d, dry)
        if not dry:
            buf[pos] = 46
            buf[pos + 1] = 48
        return pos + 2
    if p >= d:  # 0.000ddd
        if not dry:
            buf[pos] = 48
            buf[pos + 1] = 46
            for i in range(p - d):
                buf[pos + 2 + i] = 48
        return _uint(buf, pos + 2 + p - d, k, d, dry)
    scale = np.int64(_P10[p])
    pos = _uint(buf, pos, k // scale, d - p, dry)
    if not dry:
        buf[pos] = 46
    return _uint(buf, pos + 1, k % scale, p, dry)


@njit(cache=True, nogil=True)
def plan(rule, values, prog, prog_lo, nflt, ntim, nbad):
    """The values `emit` needs formatted elsewhere, in its order: floats for polars, times (us)
    for the time table, and (record, op) of values out of range for the Event path's formatter.
    nflt, ntim, nbad: upper bounds of each."""
    flt = np.empty(nflt, dtype=np.float64)
    tim = np.empty(ntim, dtype=np.int64)
    bad = np.empty((nbad, 2), dtype=np.int64)
    nf = nt = nb = 0
    for q in range(len(rule)):
        j = rule[q]
        for o in range(prog_lo[j], prog_lo[j + 1]):
            op = prog[o, 0]
            if op == LIT or op == DIRECTION:
                continue
            x = values[q, prog[o, 1]]
            if op == NUM or op == PCT:
                if op == PCT:
                    x = 100.0 * x
                if np.isfinite(x) and x != 0.0 and short(abs(x))[0] < 0:
                    flt[nf] = x
                    nf += 1
            elif op == SIGN or op == INT:
                if not np.isnan(x) and not abs(x) < _I64:
                    bad[nb, 0], bad[nb, 1] = q, o
                    nb += 1
            elif op == ZONE:
                count = prog[o, 3]
                if abs(x) < _I64 and -count <= np.int64(x) < count:
                    continue
                bad[nb, 0], bad[nb, 1] = q, o
                nb += 1
            else:  # TIME
                if abs(x) < _I64:
                    tim[nt] = np.int64(x)
                    nt += 1
                else:
                    bad[nb, 0], bad[nb, 1] = q, o
                    nb += 1
    return flt[:nf], tim[:nt], bad[:nb]


@njit(cache=True, nogil=True, _nrt=False)
def emit(buf, dry, seq0, sym, tix, rule, kind, state, late, values, lit, lit_off, sym_data, sym_off,
         tm_data, tm_off, prog, prog_lo, nkinds, nstates, after_id, after_time,
         flt_data, flt_off, tim_ix, tv_data, tv_off, bad_data, bad_off):
    """Writes the lines into buf (dry: only counts); returns the number of bytes."""
    pos = 0
    fi = ti = bi = 0
    for q in range(len(sym)):
        s, t, j = sym[q], tix[q], rule[q]
        jk = j * nkinds + kind[q]
        s_lo, s_hi, t_lo, t_hi = sym_off[s], sym_off[s + 1], tm_off[t], tm_off[t + 1]
        pos = _copy(buf, pos, lit, lit_off[HEAD], lit_off[HEAD + 1], dry)
        pos = _int(buf, pos, seq0 + 1 + q, dry)
        pos = _copy(buf, pos, lit, lit_off[ID], lit_off[ID + 1], dry)
        pos = _copy(buf, pos, sym_data, s_lo, s_hi, dry)
        pos = _copy(buf, pos, lit, lit_off[BAR], lit_off[BAR + 1], dry)
        pos = _copy(buf, pos, tm_data, t_lo, t_hi, dry)
        a = after_id + jk
        pos = _copy(buf, pos, lit, lit_off[a], lit_off[a + 1], dry)
        pos = _copy(buf, pos, sym_data, s_lo, s_hi, dry)
        pos = _copy(buf, pos, lit, lit_off[TIMEKEY], lit_off[TIMEKEY + 1], dry)
        pos = _copy(buf, pos, tm_data, t_lo, t_hi, dry)
        a = after_time + jk * nstates + state[q]
        pos = _copy(buf, pos, lit, lit_off[a], lit_off[a + 1], dry)
        for o in range(prog_lo[j], prog_lo[j + 1]):
            op = prog[o, 0]
            if op == LIT:
                a = prog[o, 1]
                pos = _copy(buf, pos, lit, lit_off[a], lit_off[a + 1], dry)
                continue
            x = values[q, prog[o, 1]]
            a = -1  # a literal to write
            if op == NUM or op == PCT:
                if op == PCT:
                    x = 100.0 * x
                if not np.isfinite(x):
                    a = NULL
                elif x == 0.0:
                    a = MINUS_ZERO if np.signbit(x) else ZERO
                else:
                    ax = abs(x)
                    k, p = short(ax)
                    if k >= 0:
                        pos = _short_text(buf, pos, x < 0, k, p, dry)
                    else:  # polars' text, "e+" -> "e"
                        lo, hi = flt_off[fi], flt_off[fi + 1]
                        fi += 1
                        if ax >= 1e15:  # perhaps written with an exponent: "e+" -> "e"
                            for i in range(lo, hi):
                                c = flt_data[i]
                                if c != 43:
                                    if not dry:
                                        buf[pos] = c
                                    pos += 1
                        else:
                            pos = _copy(buf, pos, flt_data, lo, hi, dry)
            elif op == SIGN or op == INT:
                if np.isnan(x):
                    a = NULL
                elif abs(x) < _I64:
                    pos = _int(buf, pos, np.int64(x), dry)
                else:
                    pos = _copy(buf, pos, bad_data, bad_off[bi], bad_off[bi + 1], dry)
                    bi += 1
            elif op == ZONE:
                count = prog[o, 3]
                if abs(x) < _I64 and -count <= np.int64(x) < count:
                    a = prog[o, 2] + np.int64(x) % count
                else:
                    pos = _copy(buf, pos, bad_data, bad_off[bi], bad_off[bi + 1], dry)
                    bi += 1
            elif op == TIME:
                if abs(x) < _I64:
                    v = tim_ix[ti]
                    ti += 1
                    if not dry:
                        buf[pos] = 34
                    pos = _copy(buf, pos + 1, tv_data, tv_off[v], tv_off[v + 1], dry)
                    if not dry:
                        buf[pos] = 34
                    pos += 1
                else:
                    pos = _copy(buf, pos, bad_data, bad_off[bi], bad_off[bi + 1], dry)
                    bi += 1
            else:  # DIRECTION
                a = UP if x > 0 else DOWN
            if a >= 0:
                pos = _copy(buf, pos, lit, lit_off[a], lit_off[a + 1], dry)
        a = TAIL_LATE if late[q] else TAIL
        pos = _copy(buf, pos, lit, lit_off[a], lit_off[a + 1], dry)
    return pos
