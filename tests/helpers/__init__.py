"""Helpers shared by the test packages (importable because pytest's ``pythonpath`` holds ``tests``)."""
