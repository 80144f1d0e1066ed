"""The common head of every indicator block: value, previous value, update count."""

VALUE = 0  # current output, NaN during warm-up
PREV = 1  # previous output (for the slope sign), NaN until two outputs
COUNT = 2  # inputs seen
HEAD = 3  # size of the common head; indicator-specific slots follow
