"""The numba half of `stream.lines`: event records -> JSON lines in a byte buffer.

Every piece of text is either a literal (pre-encoded once per encoder: the line's fixed parts,
the keys of `values`, zone names, constants), an entry of a text table (symbols, times, float
texts from polars, odd values formatted by the Event path), or a number written here (seq,
slope signs, counts, and floats in [1e-4, 1e15): their shortest round-trip decimals, `short`).

A rule's `values` object is a small program: rows of (op, col, names, count, literal) run for
each of its records, each writing its literal (the key before the value; -1: none) then its
value. `run` makes two passes over the records: dry, it collects what must be formatted
elsewhere (floats for polars, times, values out of range for the Event path), in the order it
will use them, and counts the bytes it writes itself; wet, it writes the lines. Every write is
checked against the buffer's end, so sizes that disagree make a short result, never an overrun.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import leading_zeros
from numba.extending import intrinsic

from .signals.common import E_KIND, E_RULE, E_STATE, E_SYM, E_T

# ops of a values program, rows of (op, col, names, count, literal): ZONE's names are literals
# names .. names + count, each its key and name (the key alone is its literal, written before a
# value out of range); LIT writes only its literal
LIT, NUM, PCT, SIGN, INT, ZONE, TIME, DIRECTION = range(8)
# literals every encoder has, at these indices of its literal table
HEAD, ID, BAR, TIMEKEY, NULL, UP, DOWN, TAIL, TAIL_LATE, ZERO, MINUS_ZERO = range(11)
FIXED = 11

PAD = 16  # spare bytes at the end of every text table
MEMO_BITS = 3
MEMO = 1 << MEMO_BITS  # rows of run's memo of float texts
_I64 = 2.0**63
_P10I = np.array([10**i for i in range(19)], dtype=np.int64)
_P10U = np.array([10**i for i in range(20)], dtype=np.uint64)
_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8)  # "00" .. "99"
_P10 = np.array([10.0**i for i in range(23)])  # exact
_POW = np.array([float(f"1e{e}") for e in range(-4, 16)])  # _POW[e + 4]: the double nearest 10**e


@intrinsic
def _bits(typingctx, x):
    """The bits of a float64 as an int64."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _move16(typingctx, dst, dpos, src, spos):
    """Copies the 16 bytes at src[spos:] to dst[dpos:] (one unaligned load and store, unchecked;
    src may be dst, the ranges may overlap)."""
    sig = types.void(dst, types.intp, src, types.intp)

    def codegen(context, builder, signature, args):
        d = context.make_array(signature.args[0])(context, builder, args[0])
        s = context.make_array(signature.args[2])(context, builder, args[2])
        dp = builder.gep(d.data, [args[1]])
        sp = builder.gep(s.data, [args[3]])
        cgutils.raw_memmove(builder, dp, sp, ir.Constant(ir.IntType(64), 16), 1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _store8(typingctx, dst, dpos, val):
    """Stores the uint64 val at dst[dpos:] as 8 bytes, its lowest byte first (unaligned, unchecked)."""
    sig = types.void(dst, types.intp, types.uint64)

    def codegen(context, builder, signature, args):
        d = context.make_array(signature.args[0])(context, builder, args[0])
        dp = builder.bitcast(builder.gep(d.data, [args[1]]), ir.IntType(64).as_pointer())
        builder.store(args[2], dp, align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _mul128(typingctx, a, b):
    """(high, low) 64-bit halves of the 128-bit product of two uint64."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        hi = builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, [hi, builder.trunc(p, ir.IntType(64))])

    return sig, codegen


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def short(ax):
    """(k, p) with ax == k / 10**p, k of at most 17 digits and no trailing zero (p > 0): the
    shortest round-trip decimal of ax in [1e-4, 1e15), the one nearest ax of that length (ties to
    even), as Ryu and msgspec write it; (-1, 0) when ax is not such a number, or it would take 16
    or 17 digits and ax is below 1e-3 or a power of two (left to polars).
    Up to 15 digits in floats: two such decimals never round to the same double, so the one that
    parses back to ax is the shortest; 16 and 17 exactly, in 128-bit integers (`_long`)."""
    if not (1e-4 <= ax < 1e15):
        return -1, 0
    e2 = ((_bits(ax) >> 52) & 0x7FF) - 1023  # 2**e2 <= ax < 2**(e2 + 1)
    e = min(max(int(math.floor(e2 * 0.3010299956639812)), -4), 14)  # log10(ax), or one less
    if e < 14 and ax >= _POW[e + 5]:  # 10**(e+1) <= ax
        e += 1
    p = 14 - e
    k = np.int64(ax * _P10[p] + 0.5)
    if k >= 1_000_000_000_000_000 or k / _P10[p] != ax:
        return _long(ax, e2, e)
    return _strip(k, p)


@njit(cache=True, nogil=True, _nrt=False)
def _long(ax, e2, e):
    """`short` for 16 and 17 digits (ax in [10**e, 10**(e+1)), [2**e2, 2**(e2+1))): ax is
    m / 2**s exactly, so ax * 10**p is m * 10**p / 2**s, whose nearest integer n (ties to even)
    and distance from it are exact; n / 10**p parses back to ax when that distance is under half
    ax's spacing (10**p / 2 in these units). It is never equal to it here: a point halfway between
    two doubles of this range has over 17 significant digits. Kept apart from the common case
    (not inlined): a fifth of the floats of events come here."""
    frac = _bits(ax) & 0xFFFFFFFFFFFFF
    if ax < 1e-3 or frac == 0:  # 10**p beyond 64 bits; a power of two's interval is lopsided
        return -1, 0
    m = np.uint64(frac | (1 << 52))
    s = 52 - e2  # 3 <= s <= 62 in [1e-3, 1e15)
    us = np.uint64(s)
    half = np.uint64(1) << np.uint64(s - 1)
    for digits in (16, 17):
        p = digits - 1 - e
        big = _P10U[p]
        hi, lo = _mul128(m, big)
        n = (hi << np.uint64(64 - s)) | (lo >> us)
        rem = lo & ((np.uint64(1) << us) - np.uint64(1))
        up = rem > half or (rem == half and (n & np.uint64(1)) == np.uint64(1))
        dist = half + half - rem if up else rem
        n += np.uint64(up)
        if dist + dist < big:  # n has no trailing zero: a shorter decimal would have been found
            return (np.int64(n), p) if n < _P10U[digits] else (-1, 0)
    return -1, 0


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _strip(k, p):
    """(k, p) without trailing zeros in k (while p > 0)."""
    # trailing zeros off, without branches (the data decides them), in unsigned arithmetic
    u = np.uint64(k)
    d = u // np.uint64(100_000_000)
    c = (p >= 8) & (d * np.uint64(100_000_000) == u)
    u, p = (d, p - 8) if c else (u, p)
    d = u // np.uint64(10_000)
    c = (p >= 4) & (d * np.uint64(10_000) == u)
    u, p = (d, p - 4) if c else (u, p)
    d = u // np.uint64(100)
    c = (p >= 2) & (d * np.uint64(100) == u)
    u, p = (d, p - 2) if c else (u, p)
    d = u // np.uint64(10)
    c = (p >= 1) & (d * np.uint64(10) == u)
    u, p = (d, p - 1) if c else (u, p)
    k = np.int64(u)
    return k, p


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _digits(v):
    """Digits of v >= 0: from its bit length (log10(2) ~ 1233 / 4096), one less if below 10**t."""
    t = ((64 - leading_zeros(v | 1)) * 1233) >> 12
    return t + 1 if t == 0 or v >= _P10I[t] else t


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _put(buf, pos, c, dry):
    if not dry and pos < len(buf):
        buf[pos] = c
    return pos + 1


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _eight(v):
    """The 8 digits of v < 10**8 (zero-padded) as ASCII bytes of a uint64, the first digit in its
    lowest byte: halves, quarters and digits split in parallel lanes (multiplications by
    2**k / 100 and 2**k / 10, exact in these ranges), no loop and no branch."""
    v = np.uint64(v)
    hi = v // np.uint64(10_000)
    x = hi | ((v - hi * np.uint64(10_000)) << np.uint64(32))  # 32-bit lanes: 4 digits each
    a = ((x * np.uint64(10486)) >> np.uint64(20)) & np.uint64(0x0000007F_0000007F)  # lane // 100
    x = a | ((x - a * np.uint64(100)) << np.uint64(16))  # 16-bit lanes: 2 digits each
    a = ((x * np.uint64(103)) >> np.uint64(10)) & np.uint64(0x000F000F_000F000F)  # lane // 10
    x = a | ((x - a * np.uint64(10)) << np.uint64(8))  # bytes: 1 digit each
    return x + np.uint64(0x30303030_30303030)


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _uint(buf, pos, v, d, dry):
    """Writes v >= 0 in d >= 1 digits (zero-padded; v < 10**d) at pos. Up to 16 digits as one or
    two 8-byte stores of `_eight` where buf has 8 spare bytes after them (bytes past pos + d are
    overwritten by what follows, or past the end of the text); else two digits at a time."""
    if not dry:
        if d <= 16 and pos + d + 8 <= len(buf):
            u = np.uint64(v)
            if d <= 8:
                _store8(buf, pos, _eight(u) >> np.uint64(64 - 8 * d))
            else:
                hi = u // np.uint64(100_000_000)
                _store8(buf, pos, _eight(hi) >> np.uint64(128 - 8 * d))
                _store8(buf, pos + d - 8, _eight(u - hi * np.uint64(100_000_000)))
        elif pos + d <= len(buf):
            u = np.uint64(v)  # unsigned: division by a constant is a multiplication
            i = pos + d
            while i - pos >= 2:
                w = u // np.uint64(100)
                r = np.int64(u - w * np.uint64(100))
                u = w
                buf[i - 1] = _PAIRS[2 * r + 1]
                buf[i - 2] = _PAIRS[2 * r]
                i -= 2
            if i > pos:
                buf[pos] = 48 + np.int64(u)
    return pos + d


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _int(buf, pos, v, dry):
    if v < 0:
        pos = _put(buf, pos, 45, dry)
        v = -v
    return _uint(buf, pos, v, _digits(v), dry)


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _copy(buf, pos, data, lo, hi, dry):
    """Copies data[lo:hi] to buf[pos:]: 16 bytes at a time where buf has room for the last
    (every table ends in PAD spare bytes, so its reads stay inside it)."""
    n = hi - lo
    if not dry:
        if pos + n + PAD <= len(buf):
            for i in range(0, n, 16):
                _move16(buf, pos + i, data, lo + i)
        elif pos + n <= len(buf):
            for i in range(n):
                buf[pos + i] = data[lo + i]
    return pos + n


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _lit(buf, pos, lit, lit_off, a, dry):
    return _copy(buf, pos, lit, lit_off[a], lit_off[a + 1], dry)


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _short_text(buf, pos, neg, k, p, ax, dry):
    """Writes the decimal k / 10**p (`short`'s, of ax) at pos."""
    if dry:  # k.0, 0.000ddd, dd.ddd
        return pos + neg + max(_digits(k) + 1, p + 2) + (p == 0)
    if neg:
        pos = _put(buf, pos, 45, dry)
    d = _digits(k)
    if p == 0:  # k.0
        pos = _uint(buf, pos, k, d, dry)
        pos = _put(buf, pos, 46, dry)
        return _put(buf, pos, 48, dry)
    if p >= d:  # 0.000ddd
        pos = _put(buf, pos, 48, dry)
        pos = _put(buf, pos, 46, dry)
        for _ in range(p - d):
            pos = _put(buf, pos, 48, dry)
        return _uint(buf, pos, k, d, dry)
    scale = _P10I[p]
    i = np.int64(ax)  # k // scale, or one off where k rounded across an integer: no division
    f = k - i * scale
    if f < 0:
        i, f = i - 1, f + scale
    elif f >= scale:
        i, f = i + 1, f - scale
    pos = _uint(buf, pos, i, d - p, dry)
    pos = _put(buf, pos, 46, dry)
    return _uint(buf, pos, f, p, dry)


@njit(cache=True, nogil=True, _nrt=False)
def run(buf, dry, one, seq0, rec, tix, late, values, lit, lit_off, sym_data, sym_off,
        tm_data, tm_off, prog, prog_lo, nkinds, nstates, after_id, after_time, kp, flt, flt_data, flt_off,
        sep, tim, tim_ix, tv_data, tv_off, bad, bad_data, bad_off, counts, memo):
    """One pass (`one`, the common case): writes the lines into buf, formatting every value
    itself, and returns the bytes written, or -1 as soon as a value needs the two passes (a float
    `short` leaves to polars, a time outside years 1000..9999, a value out of range) or buf is
    too small. Dry (buf unused): fills kp (each finite non-zero float's decimal k * 32 + p, or
    -1), flt (the floats of -1, for polars), tim (times, us) and bad ((record, op) of values out
    of range) in the order the wet pass reads their texts, sets counts to their numbers and
    returns the bytes of everything else. Wet: writes the lines into buf, reading those texts
    from (flt_data, flt_off) (each followed by sep bytes of separator), (tv_data, tv_off)[tim_ix]
    and (bad_data, bad_off), and returns the bytes written (len(buf) when the sizes agree).
    One pass keeps in memo (MEMO rows of float bits and where its text is in buf) the floats
    written last, by a hash of their bits: a value met again (a bar's close in each of its
    events, both events of a zone change) is copied from its first text, not formatted again."""
    pos = 0
    for i in range(MEMO):
        memo[i, 0] = 0  # the bits of 0.0: never looked up (zeros are literals)
    nf = nt = nb = nk = 0
    for q in range(rec.shape[0]):
        s, t, j = rec[q, E_SYM], tix[q], rec[q, E_RULE]
        jk = j * nkinds + rec[q, E_KIND]
        s_lo, s_hi, t_lo, t_hi = sym_off[s], sym_off[s + 1], tm_off[t], tm_off[t + 1]
        pos = _lit(buf, pos, lit, lit_off, HEAD, dry)
        pos = _int(buf, pos, seq0 + 1 + q, dry)
        pos = _lit(buf, pos, lit, lit_off, ID, dry)
        pos = _copy(buf, pos, sym_data, s_lo, s_hi, dry)
        pos = _lit(buf, pos, lit, lit_off, BAR, dry)
        pos = _copy(buf, pos, tm_data, t_lo, t_hi, dry)
        pos = _lit(buf, pos, lit, lit_off, after_id + jk, dry)
        pos = _copy(buf, pos, sym_data, s_lo, s_hi, dry)
        pos = _lit(buf, pos, lit, lit_off, TIMEKEY, dry)
        pos = _copy(buf, pos, tm_data, t_lo, t_hi, dry)
        pos = _lit(buf, pos, lit, lit_off, after_time + jk * nstates + rec[q, E_STATE], dry)
        for o in range(prog_lo[j], prog_lo[j + 1]):
            op = prog[o, 0]
            if prog[o, 4] >= 0 and op != ZONE:  # a zone's names start with its key
                pos = _lit(buf, pos, lit, lit_off, prog[o, 4], dry)
            if op == LIT:
                continue
            x = values[q, prog[o, 1]]
            a = -1  # a literal to write
            out = False  # the text is the next of bad_data
            if op == NUM or op == PCT:
                if op == PCT:
                    x = 100.0 * x
                if not np.isfinite(x):
                    a = NULL
                elif x == 0.0:
                    a = MINUS_ZERO if np.signbit(x) else ZERO
                else:
                    ax = abs(x)
                    if one:
                        b = _bits(x)
                        h = (np.uint64(b) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - MEMO_BITS)
                        if memo[h, 0] == b:
                            w = memo[h, 1]
                            pos = _copy(buf, pos, buf, w >> 8, (w >> 8) + (w & 255), dry)
                            continue
                        start = pos
                        k, p = short(ax)
                        if k < 0:
                            return -1
                        pos = _short_text(buf, pos, x < 0, k, p, ax, dry)
                        memo[h, 0], memo[h, 1] = b, (start << 8) | (pos - start)
                        continue
                    if dry:  # the dry pass finds the decimal (k, p), the wet one reads it
                        k, p = short(ax)
                        kp[nk] = k * 32 + p if k >= 0 else -1
                    else:
                        k = kp[nk]
                        k, p = (k >> 5, k & 31) if k >= 0 else (k, 0)
                    nk += 1
                    if k >= 0:
                        pos = _short_text(buf, pos, x < 0, k, p, ax, dry)
                    elif dry:
                        flt[nf] = x
                        nf += 1
                    else:  # polars' text, "e+" -> "e"
                        lo, hi = flt_off[nf], flt_off[nf + 1] - sep
                        nf += 1
                        if ax >= 1e15:  # perhaps written with an exponent
                            for i in range(lo, hi):
                                if flt_data[i] != 43:
                                    pos = _put(buf, pos, flt_data[i], dry)
                        else:
                            pos = _copy(buf, pos, flt_data, lo, hi, dry)
            elif op == SIGN or op == INT:
                if np.isnan(x):
                    a = NULL
                elif abs(x) < _I64:
                    pos = _int(buf, pos, np.int64(x), dry)
                else:
                    out = True
            elif op == ZONE:
                count = prog[o, 3]
                i = np.int64(x) if abs(x) < _I64 else count  # NaN, inf and beyond: out of range
                if -count <= i < count:
                    a = prog[o, 2] + (i + count if i < 0 else i)  # a negative index counts from the end
                else:
                    pos = _lit(buf, pos, lit, lit_off, prog[o, 4], dry)  # the key alone
                    out = True
            elif op == TIME:
                if abs(x) < _I64:
                    pos = _put(buf, pos, 34, dry)
                    if one:
                        us = np.int64(x)
                        pos = _stamp(buf, pos, us // 1_000_000, us % 1_000_000 * 1000)
                        if pos < 0:
                            return -1
                    elif dry:
                        tim[nt] = np.int64(x)
                    else:
                        v = tim_ix[nt]
                        pos = _copy(buf, pos, tv_data, tv_off[v], tv_off[v + 1], dry)
                    nt += 1
                    pos = _put(buf, pos, 34, dry)
                else:
                    out = True
            else:  # DIRECTION
                a = UP if x > 0 else DOWN
            if a >= 0:
                pos = _lit(buf, pos, lit, lit_off, a, dry)
            elif out:
                if one:
                    return -1
                if dry:
                    bad[nb, 0], bad[nb, 1] = q, o
                else:
                    pos = _copy(buf, pos, bad_data, bad_off[nb], bad_off[nb + 1], dry)
                nb += 1
        pos = _lit(buf, pos, lit, lit_off, TAIL_LATE if late[q] else TAIL, dry)
        if one and pos > len(buf):
            return -1
    counts[0], counts[1], counts[2] = nf, nt, nb
    return pos


@njit(cache=True, nogil=True, _nrt=False)
def prepare(rec, nsym, nrules, nkinds, nstates, most, sym_off, per_rule, t_ix, starts):
    """One pass over n records (int64 [n, E_WIDTH], the engine's) before `run`: returns (ok,
    runs, size). ok: every symbol, rule,
    kind and state index is in range (else nothing more is done: the caller names the column).
    Runs of equal neighbouring times: runs[i] begins at record starts[i], t_ix[q] is q's run.
    per_rule: records of each rule. size: the most bytes `run` can write but for the times
    (`most` per rule, and each symbol's text twice)."""
    n = rec.shape[0]
    for j in range(nrules):
        per_rule[j] = 0
    runs = 0
    size = 0
    for q in range(n):
        s, j, k, st = rec[q, E_SYM], rec[q, E_RULE], rec[q, E_KIND], rec[q, E_STATE]
        if not (0 <= s < nsym and 0 <= j < nrules and 0 <= k < nkinds and 0 <= st < nstates):
            return False, 0, 0
        if q == 0 or rec[q, E_T] != rec[q - 1, E_T]:
            starts[runs] = q
            runs += 1
        t_ix[q] = runs - 1
        per_rule[j] += 1
        size += most[j] + 2 * (sym_off[s + 1] - sym_off[s])
    starts[runs] = n
    return True, runs, size


_YEAR_1000 = -30_610_224_000  # 1000-01-01 in seconds: from here ...
_YEAR_10000 = 253_402_300_800  # ... to the end of 9999 a year has 4 digits (else: the caller's rfc3339)
STAMP = 30  # most bytes of a stamp: 2024-05-01T13:30:00.123456789Z


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _stamp(data, pos, s, f):
    """`events.rfc3339` of (seconds s, nanoseconds f) written at pos (STAMP bytes at most, each
    write checked); returns the new position, or -1 for a year outside 1000..9999."""
    if s < _YEAR_1000 or s >= _YEAR_10000:
        return -1
    days = s // 86400
    rem = s - days * 86400
    z = days + 719468  # days from 0000-03-01 (H. Hinnant's civil_from_days)
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    pos = _uint(data, pos, year, 4, False)
    pos = _put(data, pos, 45, False)
    pos = _uint(data, pos, month, 2, False)
    pos = _put(data, pos, 45, False)
    pos = _uint(data, pos, day, 2, False)
    pos = _put(data, pos, 84, False)
    pos = _uint(data, pos, rem // 3600, 2, False)
    pos = _put(data, pos, 58, False)
    pos = _uint(data, pos, rem // 60 % 60, 2, False)
    pos = _put(data, pos, 58, False)
    pos = _uint(data, pos, rem % 60, 2, False)
    if f:  # .123456789 without its trailing zeros
        d = 9
        while f % 10 == 0:
            f //= 10
            d -= 1
        pos = _put(data, pos, 46, False)
        pos = _uint(data, pos, f, d, False)
    return _put(data, pos, 90, False)


@njit(cache=True, nogil=True, _nrt=False)
def stamps(sec, frac, data, off):
    """`events.rfc3339` of each (seconds, nanoseconds) into data (STAMP bytes each at most):
    text i is data[off[i]:off[i + 1]]; a year outside 1000..9999 is left empty for the caller.
    Returns how many were left."""
    pos = 0
    left = 0
    for i in range(len(sec)):
        off[i] = pos
        end = _stamp(data, pos, sec[i], frac[i])
        if end < 0:
            left += 1
        else:
            pos = end
    off[len(sec)] = pos
    return left
