"""State rows with an optional undo journal: the library indicators' peek and revise.

Every state write goes through `put`, which records (slot, old value) in the row's journal
region when the journal length `jn` is >= 0. The length travels in a local (returned by every
step), stored once per step. Undoing the journal restores the row bit for bit, so `revise`
leaves state exactly as if the new input had come first, and `peek` is "apply, read, undo".
Each step writes a bounded number of slots, so both cost O(1) whatever the history.

Row layout (the library's rows): [0] journal length, then journal pairs (slot, old value),
then the blocks. The engine's kernel passes jn = -1 (no journal, compiled away) and keeps a
copy of a row instead where a revision may follow (stream/kernel.py `_bar`).
"""

from numba import njit

JLEN = 0  # slot of the journal length
JBASE = 1  # first journal pair


@njit(cache=True, _nrt=False, forceinline=True)
def _put(A, S, r, jn, k, v):
    """Write A[r, k] = v (A is S, or S viewed as int64), journaling slot k in S and the old
    value's bits through A as entry jn; returns jn + 1 (jn < 0: no journal, returns jn)."""
    if jn < 0:
        A[r, k] = v
        return jn
    j = JBASE + 2 * jn
    S[r, j] = k
    A[r, j + 1] = A[r, k]
    A[r, k] = v
    return jn + 1


@njit(cache=True, _nrt=False, forceinline=True)
def put(S, r, jn, k, v):
    """Write S[r, k] = v, journaling the old value as entry jn; returns jn + 1.
    jn < 0 writes without a journal (a bar that nothing can revise or peek past)."""
    return _put(S, S, r, jn, k, v)


@njit(cache=True, _nrt=False, forceinline=True)
def puti(S, SI, r, jn, k, v):
    """`put` for a slot holding an integer, read and written through SI (S viewed as int64): no
    float conversions on the hot path. The journal keeps the old bits; undo moves them back
    as they were (it copies slots, never computes with them)."""
    return _put(SI, S, r, jn, k, v)


@njit(cache=True, _nrt=False)
def undo(S, r, mark):
    """Roll row r back to journal length `mark` (newest write first)."""
    n = int(S[r, JLEN])
    while n > mark:
        n -= 1
        j = JBASE + 2 * n
        S[r, int(S[r, j])] = S[r, j + 1]
    S[r, JLEN] = mark
