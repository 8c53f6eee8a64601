"""kopf registration, kept thin: importing this package registers every handler."""

from spikeprof.handlers import sessions, startup

__all__ = ["sessions", "startup"]
