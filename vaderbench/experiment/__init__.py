"""Experiment files: the schema, the sweep grid, and their checks."""
