"""Opening a page in headless Chromium over the DevTools protocol: console errors, requests, a screenshot.

Debian's `chromium` with the flags the issue names; the protocol (through the
websocket-client package) reports every request the page makes and every
console message, which log scraping would not do reliably.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    requests: list[str] = field(default_factory=list)  # every URL the page asked for, itself included
    console_errors: list[str] = field(default_factory=list)
    screenshot_png: bytes = b""
    boxes: list[dict] = field(default_factory=list)  # page coordinates of each <svg>
    title: str = ""


class _Session:
    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(event)
            self.events.append(json.loads(self.ws.recv()))


def visit(page: Path, width: int = 1200) -> PageVisit:
    """Load a local file, let it settle, and collect what it did."""
    profile = tempfile.mkdtemp(prefix="wattsweep-chromium-")
    process = subprocess.Popen([chromium_path(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                f"--window-size={width},900", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        target = next(t for t in targets if t["type"] == "page")
        session = _Session(target["webSocketDebuggerUrl"])
        for domain in ("Page", "Network", "Runtime", "Log"):
            session.call(f"{domain}.enable")
        session.call("Page.navigate", url=page.resolve().as_uri())
        session.wait_for("Page.loadEventFired")
        time.sleep(0.3)  # late requests or console messages, if any
        result = PageVisit()
        metrics = session.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = session.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": width, "height": metrics["height"], "scale": 1})
        result.screenshot_png = base64.b64decode(shot["data"])
        boxes = session.call("Runtime.evaluate", returnByValue=True, expression=(
            "JSON.stringify([...document.querySelectorAll('svg')].map(s => {const r = s.getBoundingClientRect();"
            " return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height};}))"))
        result.boxes = json.loads(boxes["result"]["value"])
        result.title = session.call("Runtime.evaluate", expression="document.title",
                                    returnByValue=True)["result"]["value"]
        for event in session.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                result.requests.append(params["request"]["url"])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                result.console_errors.append(json.dumps(params.get("args")))
            elif method == "Runtime.exceptionThrown":
                result.console_errors.append(json.dumps(params.get("exceptionDetails")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                result.console_errors.append(params["entry"].get("text", ""))
        session.ws.close()
        return result
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)
