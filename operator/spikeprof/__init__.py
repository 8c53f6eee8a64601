"""spikeprof: a Kubernetes operator that captures pprof profiles of pods when they spike."""

__version__ = "0.1.0"
