"""The ``softlabel`` command: one entry point over the engine, service and trainer commands."""
