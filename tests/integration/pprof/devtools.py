"""Headless Chromium, driven over the Chrome DevTools Protocol: enough to load a page, type, click,
hover, read the DOM and take a screenshot, as a person would look at a flame graph."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
from localcluster.processes import spawn, stop_group

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
    "--remote-debugging-port=0",
)
CALL_TIMEOUT = 30.0
VIEWPORT = (1400, 900)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


class Chromium:
    """One headless browser process with a profile directory of its own."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.profile_dir = workdir / "chromium-profile"
        self.profile_dir.mkdir(parents=True)
        self.log = workdir / "chromium.log"
        self.process: subprocess.Popen[bytes] = spawn(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile_dir}", "about:blank"],
            self.log,
        )
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        # Chromium writes the port it chose (port 0: any free one) to DevToolsActivePort.
        active = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"chromium exited at start-up:\n{self.log.read_text()}")
            if active.exists() and (lines := active.read_text().splitlines()):
                return int(lines[0])
            time.sleep(0.05)
        raise AssertionError(f"chromium did not open its DevTools port:\n{self.log.read_text()}")

    def stop(self) -> None:
        stop_group(self.process.pid)
        self.process.wait(timeout=10)


class Page:
    """One tab: calls are answered in order; events are kept for wait_for_event."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        socket: aiohttp.ClientWebSocketResponse,
        target_id: str,
        port: int,
    ) -> None:
        self.session = session
        self.socket = socket
        self.target_id = target_id
        self.port = port
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    @classmethod
    async def open(cls, chromium: Chromium) -> Page:
        session = aiohttp.ClientSession()
        base = f"http://127.0.0.1:{chromium.port}"
        async with session.put(f"{base}/json/new?about:blank") as response:
            target = await response.json()
        socket = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = cls(session, socket, target["id"], chromium.port)
        await page.call("Page.enable")
        await page.call("Runtime.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=VIEWPORT[0],
            height=VIEWPORT[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        return page

    async def close(self) -> None:
        async with self.session.get(f"http://127.0.0.1:{self.port}/json/close/{self.target_id}"):
            pass
        await self.socket.close()
        await self.session.close()

    async def _receive(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self.socket.receive(), CALL_TIMEOUT)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"DevTools closed the connection: {message!r}")
        received: dict[str, Any] = json.loads(message.data)
        return received

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await self._receive()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    async def wait_for_event(self, method: str) -> dict[str, Any]:
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(await self._receive())

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for_event("Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def center_of(self, selector: str) -> tuple[float, float]:
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        return float(box[0]), float(box[1])

    async def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )

    async def hover(self, x: float, y: float) -> None:
        await self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    async def type_into(self, selector: str, text: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.call("Input.insertText", text=text)

    async def screenshot(self, path: Path) -> bytes:
        shot = await self.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        await asyncio.to_thread(path.write_bytes, png)
        return png
