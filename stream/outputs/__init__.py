"""Where events go: JSON lines (jsonl), the local websocket fan-out (fanout), the terminal table (table).

Every output takes a batch's events together with their JSON lines, encoded once by the runner
(`stream.runner`), and never blocks the engine: the JSON-lines writer writes and flushes, the
fan-out only enqueues, the table only reads snapshots on its own timer.
"""
