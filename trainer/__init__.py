"""softlabel trainer: U-Nets trained on soft labels pulled from the service over HTTP.

Importing this package imports nothing heavy; torch and MONAI are imported by the modules
that need them (``losses``, ``models``, ``train``, ``evaluate``).
"""
