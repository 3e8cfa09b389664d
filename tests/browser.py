"""A real headless browser for the tests: Debian's chromium, driven by selenium.

The browser and its driver are the system's (`apt-get install chromium chromium-driver`; .ci/run
installs them where it can); selenium is told both paths and never downloads anything. Where
either is missing the tests that need it are skipped, and the reason names what is missing.
The driver is started per test and quit at its end, its process (and the browser under it)
ended by PID if quitting failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"
# 1600 x 900: 16:9, as a projector shows a deck; the live page gets the same window.
WINDOW = (1600, 900)
PAGE_LOAD_S = 30


def find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or why a browser test cannot run here."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    browser = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    driver = shutil.which(CHROMEDRIVER)
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path]
    if missing or browser is None or driver is None:
        return (
            f"{' and '.join(missing)} not found on PATH "
            "(Debian: apt-get install -y chromium chromium-driver)"
        )
    return browser, driver


@contextlib.contextmanager
def headless_chromium() -> Iterator[Any]:
    """A headless chromium under selenium's driver, quit on leaving; skips the test without one."""
    found = find_browser()
    if isinstance(found, str):
        print(f"browser test skipped: {found}")
        pytest.skip(found)
    binary, driver_path = found
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium manager: never fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root (CI containers) chromium refuses to start sandboxed
        "--disable-dev-shm-usage",  # small /dev/shm in containers
        "--disable-gpu",
        "--no-first-run",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    service = Service(driver_path)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(PAGE_LOAD_S)
    try:
        yield driver
    finally:
        process = service.process
        try:
            driver.quit()
        finally:
            # Quit ends the browser through its driver; a driver that hung is ended by PID.
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def screenshot(driver: Any, path: Path) -> Path:
    """Save what the browser shows as a PNG, and print where (pytest -s shows it)."""
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    print(f"screenshot: {path}")
    return path
