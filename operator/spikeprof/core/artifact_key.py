"""The address of one pod's artifacts of one capture, shared by every store and by retention."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArtifactKey:
    """Identifies one pod's artifacts of one capture: <ns>/<session>/<pod>/<capture id>/."""

    namespace: str
    session: str
    pod: str
    capture_id: str

    @property
    def parts(self) -> tuple[str, str, str, str]:
        return (self.namespace, self.session, self.pod, self.capture_id)

    @property
    def relative_path(self) -> str:
        return "/".join(self.parts)
