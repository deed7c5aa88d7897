"""redis-ha-lab: break Redis topologies in Docker on purpose and measure what a client saw."""

__version__ = "0.1.0"
