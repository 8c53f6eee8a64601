"""Runs one container of a Deployment's pod template with podman, as a kubelet would run it.

No kubelet runs here, so this reads the Deployment the chart installed and turns what the pod
template says into podman's flags: the user and groups, the read-only root, dropped capabilities,
no privilege escalation, the memory limit, the env, the command and args, the volumes (an
emptyDir with a size limit at /tmp becomes a tmpfs of that size; other volumes are host
directories the caller fills, as the kubelet fills Secret volumes and a PVC or emptyDir), and
the ServiceAccount token and CA the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount,
with KUBERNETES_SERVICE_HOST/PORT; env from the downward API gets the pod's name (the container's)
and namespace (the Deployment's). The network is the host's: the API server, the pods and the
operator's ports are all on loopback.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# The machine's hard limits: podman's defaults may exceed them, which fails every start.
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
PODMAN_LIMITS = [f"--ulimit=nofile={NOFILE}:{NOFILE}", "--ulimit=nproc=4096:4096"]


def podman_runtime() -> list[str]:
    """crun refuses hosts with cgroups in hybrid mode; runc runs there (and everywhere)."""
    runc = shutil.which("runc")
    return [f"--runtime={runc}"] if runc else []


def _mebibytes(quantity: str) -> int:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return max(1, int(float(quantity.removesuffix(suffix)) * factor))
    raise AssertionError(f"unexpected quantity {quantity!r} in the pod template")


class PodmanPod:
    """The first container of `deployment`'s pod template, run with podman."""

    def __init__(
        self,
        deployment: dict[str, Any],
        image: str,
        api_host: str,
        api_port: int,
        service_account_dir: Path,
        volume_dirs: dict[str, Path],
    ) -> None:
        """`volume_dirs`: volume name -> host directory, for every volume but a /tmp emptyDir."""
        self.pod = deployment["spec"]["template"]["spec"]
        self.namespace = deployment["metadata"]["namespace"]
        self.container = self.pod["containers"][0]
        self.image = image
        self.api_host = api_host
        self.api_port = api_port
        self.service_account_dir = service_account_dir
        self.volume_dirs = volume_dirs
        self.name = f"spikeprof-e2e-{uuid.uuid4().hex[:8]}"
        self.started = False

    def command(self) -> list[str]:
        pod_security = self.pod.get("securityContext") or {}
        security = {**pod_security, **(self.container.get("securityContext") or {})}
        flags = [
            "podman",
            "run",
            "--detach",
            f"--name={self.name}",
            *podman_runtime(),
            *PODMAN_LIMITS,
            "--network=host",
            f"--user={security['runAsUser']}:{security['runAsGroup']}",
        ]
        if "fsGroup" in pod_security:
            flags.append(f"--group-add={pod_security['fsGroup']}")
        if security.get("readOnlyRootFilesystem"):
            # podman would otherwise add writable tmpfs at /tmp, /var/tmp and /run of its own.
            flags += ["--read-only", "--read-only-tmpfs=false"]
        if security.get("allowPrivilegeEscalation") is False:
            flags.append("--security-opt=no-new-privileges")
        for capability in (security.get("capabilities") or {}).get("drop", []):
            flags.append(f"--cap-drop={capability}")
        assert not (security.get("capabilities") or {}).get("add"), "no capabilities to add"
        memory = ((self.container.get("resources") or {}).get("limits") or {}).get("memory")
        if memory:
            flags.append(f"--memory={_mebibytes(memory)}m")
        flags += self._volume_flags()
        flags += self._env_flags()
        command = self.container.get("command")
        if command:
            flags.append(f"--entrypoint={json.dumps(command)}")
        return [*flags, self.image, *self.container.get("args", [])]

    def _volume_flags(self) -> list[str]:
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        flags: list[str] = []
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            mode = "ro" if mount.get("readOnly") else "rw"
            if "emptyDir" in volume and mount["mountPath"] == "/tmp":
                size = (volume["emptyDir"] or {}).get("sizeLimit")
                options = f"rw,mode=1777{f',size={_mebibytes(size)}m' if size else ''}"
                flags.append(f"--tmpfs=/tmp:{options}")
            else:
                source = self.volume_dirs[mount["name"]]
                flags.append(f"--volume={source}:{mount['mountPath']}:{mode}")
        if self.pod.get("automountServiceAccountToken", True):
            flags.append(f"--volume={self.service_account_dir}:{SERVICE_ACCOUNT_DIR}:ro")
        return flags

    def _env_flags(self) -> list[str]:
        # What the kubelet gives every container: where the API server's Service is.
        env = {
            "KUBERNETES_SERVICE_HOST": self.api_host,
            "KUBERNETES_SERVICE_PORT": str(self.api_port),
        }
        # The fields of the downward API the kubelet resolves for a pod (only these two here).
        fields = {"metadata.name": self.name, "metadata.namespace": self.namespace}
        for variable in self.container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = variable["value"]
                continue
            path = variable["valueFrom"].get("fieldRef", {}).get("fieldPath")
            assert path in fields, f"only fieldRef {sorted(fields)} is supported here: {variable}"
            env[variable["name"]] = fields[path]
        assert not self.container.get("envFrom"), "envFrom is not supported here"
        return [f"--env={name}={value}" for name, value in env.items()]

    def start(self) -> None:
        result = subprocess.run(self.command(), capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"podman run failed:\n{result.stderr}")
        self.started = True

    def running(self) -> bool:
        result = subprocess.run(
            ["podman", "inspect", "--format={{.State.Running}}", self.name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout.strip() == "true"

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "exec", self.name, *command], capture_output=True, text=True, timeout=30
        )

    def logs(self) -> str:
        result = subprocess.run(
            ["podman", "logs", self.name], capture_output=True, text=True, timeout=30
        )
        return result.stdout + result.stderr

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after the pod's grace period, as the kubelet stops a pod;
        returns the exit code."""
        grace = self.pod.get("terminationGracePeriodSeconds", 30)
        subprocess.run(
            ["podman", "stop", f"--time={grace}", self.name],
            capture_output=True,
            timeout=grace + 30,
        )
        result = subprocess.run(
            ["podman", "inspect", "--format={{.State.ExitCode}}", self.name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return int(result.stdout.strip())

    def remove(self) -> None:
        if self.started:
            subprocess.run(
                ["podman", "rm", "--force", "--time=10", self.name],
                capture_output=True,
                timeout=60,
            )
            self.started = False


def write_service_account_dir(directory: Path, token: str, ca_cert: Path, namespace: str) -> Path:
    """The files the kubelet projects for a pod's ServiceAccount, readable by any user."""
    directory.mkdir(parents=True)
    directory.chmod(0o755)
    for name, content in (
        ("token", token),
        ("ca.crt", ca_cert.read_text()),
        ("namespace", namespace),
    ):
        (directory / name).write_text(content)
        (directory / name).chmod(0o644)
    return directory
