"""Experiment files and the runner behind the CLI: each command is a function returning a record."""
