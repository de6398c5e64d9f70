"""Debian's headless Chromium, driven by Selenium through Debian's chromedriver, and the
dashboard as a user starts it (`kubectl bluegreen dashboard`, a process of its own).

No browser or driver is ever downloaded: both come from `hack/host-packages.sh browser`
(which `make test` runs), found on PATH, and given to Selenium by path, so its manager
has nothing to fetch.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webelement import WebElement

from kubehelpers import wait_for

PLUGIN = Path(sys.executable).parent / "kubectl-bluegreen"
BROWSERS = ("chromium", "chromium-browser")
DRIVER = "chromedriver"
URL = re.compile(r"at (http://127\.0\.0\.1:\d+/\?token=\S+)")


def missing_reason() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if not any(shutil.which(name) for name in BROWSERS):
        return "no chromium on PATH: run `hack/host-packages.sh browser` (Debian's chromium)"
    if not shutil.which(DRIVER):
        return "no chromedriver on PATH: run `hack/host-packages.sh browser` (chromium-driver)"
    return None


def start_chromium(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = next(str(shutil.which(n)) for n in BROWSERS if shutil.which(n))
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root, Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--force-prefers-reduced-motion",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(str(shutil.which(DRIVER))))


class Dashboard:
    """`kubectl bluegreen dashboard` running with a kubeconfig, until stop()."""

    def __init__(self, kubeconfig: Path, *args: str) -> None:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.proc = subprocess.Popen(
            [str(PLUGIN), "dashboard", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.output: list[str] = []
        self._url = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._url.wait(30):
            self.stop()
            raise AssertionError(f"the dashboard printed no URL: {''.join(self.output)}")
        found = URL.search("".join(self.output))
        assert found, self.output
        self.url = found.group(1)
        self.origin = self.url.split("/?")[0]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if URL.search(line):
                self._url.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=10)  # to the end of its output
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def wait_page(
    browser: webdriver.Chrome, script: str, *args: Any, timeout: float = 30, what: str = ""
) -> Any:
    """Run ``script`` in the page until it returns something truthy; that value."""
    return wait_for(
        lambda: browser.execute_script(script, *args), timeout=timeout, what=what or script
    )


def card(browser: webdriver.Chrome, namespace: str, name: str) -> WebElement:
    found = browser.find_elements("css selector", f'article[data-app="{namespace}/{name}"]')
    assert found, f"no card for {namespace}/{name}"
    return found[0]


def field(browser: webdriver.Chrome, namespace: str, name: str, role: str) -> str:
    """The text of one part of an app's card (data-role: phase, live, preview, rollback),
    its white space as one space."""
    text: str = (
        card(browser, namespace, name).find_element("css selector", f'[data-role="{role}"]').text
    )
    return " ".join(text.split())


def shows(
    browser: webdriver.Chrome, namespace: str, name: str, role: str, text: str
) -> Callable[[], bool]:
    return lambda: text in field(browser, namespace, name, role)


def screenshot(browser: webdriver.Chrome, name: str) -> None:
    """Save a screenshot into $BLUEGREEN_SCREENSHOTS (the docs' images), when it is set."""
    folder = os.environ.get("BLUEGREEN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(Path(folder) / f"{name}.png"))
