"""Reading and writing sessions: bar files in time order (store) and replay pacing (clock)."""
