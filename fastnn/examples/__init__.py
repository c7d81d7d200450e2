"""Runnable examples: `python -m fastnn.examples.digits`."""
