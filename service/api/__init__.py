"""The HTTP layer: dependencies, routers and file responses."""
