"""All I/O: pod HTTP endpoints, the artifact volume, the Kubernetes API. Errors are mapped here."""
