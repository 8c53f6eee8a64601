"""The operator's API client: the proxy the environment names is read once, at start, and
aiohttp does not look the environment up again before every request."""

from __future__ import annotations

from pathlib import Path

import pytest

from spikeprof.adapters import kube

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: me
  user: {token: not-a-secret}
contexts:
- name: local
  context: {cluster: local, user: me}
current-context: local
"""


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


async def test_the_client_does_not_read_the_environment_before_each_request(
    kubeconfig: str,
) -> None:
    api_client = await kube.connect(kubeconfig)
    try:
        assert api_client.rest_client.pool_manager.trust_env is False
        assert api_client.configuration.proxy is None
    finally:
        await api_client.close()


async def test_the_proxy_the_environment_names_is_still_used(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    api_client = await kube.connect(kubeconfig)
    try:
        assert api_client.configuration.proxy == "http://proxy.invalid:3128"
        assert api_client.rest_client.proxy == "http://proxy.invalid:3128"
    finally:
        await api_client.close()


def test_no_proxy_keeps_the_api_server_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,.cluster.local")
    assert kube.env_proxy("https://127.0.0.1:6443") is None
    assert kube.env_proxy("https://kubernetes.default.svc.cluster.local") is None
    assert kube.env_proxy("https://api.example.test:6443") == "http://proxy.invalid:3128"
