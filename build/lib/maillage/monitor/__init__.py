"""The operators' monitor: the whole flow of events, never its content."""
