"""kopf registration, kept thin: importing this package registers every handler."""

from spikeprof.handlers import pods, sessions, startup

__all__ = ["pods", "sessions", "startup"]
