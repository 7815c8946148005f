"""The RQ job side: the job contract shared with the service, the soften job, stop requests,
recovery of abandoned jobs, stage metrics, the worker's settings and the RQ worker itself."""
