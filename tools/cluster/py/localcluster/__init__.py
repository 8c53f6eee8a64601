"""localcluster: a real Kubernetes control plane on loopback for spikeprof's tests and demo."""
