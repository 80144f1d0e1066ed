"""Signal rules, one per file; each is a numba step over one symbol's state row."""
