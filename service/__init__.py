"""softlabel REST service: uploads, datasets, labelsets and the RQ job queue.

The service validates uploads with the engine's checks and enqueues jobs by name with JSON
payloads; it never computes soft labels (the RQ workers in ``worker/`` do). Nothing is
created at import time: settings, storage and the Redis connection come from cached
factories (:func:`service.settings.get_settings`).
"""
