"""Helpers for the real-browser check of `vdi serve` (headless Chromium through Selenium): the
test and the docs' screenshot (`examples/serve_screenshot.py`, shown on docs/serve.md) run this
same code.

- `find_chromium()`: Debian's `chromium` + `chromium-driver`, or why they are not usable;
- `serving(app)`: the app on a real uvicorn server in a thread, on a free local port;
- `search_and_play(url, query, screenshot)`: load the search page, run the query, click the
  first moment, wait until the video has sought there, save a screenshot; what it measured.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver", "chromium-driver")


def find_chromium() -> tuple[str, str] | str:
    """(browser, driver) paths, or a sentence saying what is missing."""
    browser = next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver = next((p for n in DRIVER_NAMES if (p := shutil.which(n))), None)
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'vdi[dev]')"
    if browser is None or driver is None:
        missing = [n for n, p in (("chromium", browser), ("chromium-driver", driver)) if not p]
        return (f"no {' / '.join(missing)} on PATH (Debian: apt-get install chromium "
                "chromium-driver; .ci/run installs them)")
    return browser, driver


@contextmanager
def serving(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Run `app` under uvicorn in a daemon thread; yields its base URL, stops it after."""
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _driver(browser: str, driver: str, size: tuple[int, int]) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--mute-audio", "--autoplay-policy=no-user-gesture-required",
                f"--window-size={size[0]},{size[1]}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver, log_output=os.devnull), options=options)


def search_and_play(base_url: str, query: str, screenshot: str | Path, *,
                    min_start: float = 0.0, top_k: int | None = None,
                    size: tuple[int, int] = (1280, 720), settle_s: float = 1.0,
                    timeout_s: float = 30) -> dict[str, Any]:
    """Search for `query` on the page, click the first moment (the first starting at
    `min_start` s or later: a moment at 0 s cannot tell a seek from none), read the player's
    currentTime as soon as it plays, save a PNG, wait until it pauses. Returns the moment
    (vid, start, end, rank), that currentTime, where playback stopped and the page load time."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    found = find_chromium()
    if isinstance(found, str):
        raise RuntimeError(found)
    browser = _driver(*found, size)
    try:
        t0 = time.perf_counter()
        browser.get(base_url + "/")
        load_s = time.perf_counter() - t0
        box = browser.find_element(By.ID, "q")
        box.send_keys(query)
        if top_k is not None:  # the page's "top" box (default 10)
            k = browser.find_element(By.ID, "k")
            k.clear()
            k.send_keys(str(top_k))
        browser.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
        wait = WebDriverWait(browser, timeout_s)
        moments = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "button.moment"))
        rank = next((i for i, m in enumerate(moments)
                     if float(m.get_attribute("data-start")) >= min_start), None)
        if rank is None:
            raise RuntimeError(f"no moment starts at {min_start} s or later")
        chosen = moments[rank]
        start = float(chosen.get_attribute("data-start"))
        end = float(chosen.get_attribute("data-end"))
        vid = chosen.get_attribute("data-vid")
        chosen.click()
        player = "document.getElementById('player')"
        wait.until(lambda b: b.execute_script(  # playing, after any seek
            f"const p = {player}; return p.readyState >= 2 && !p.seeking && !p.paused"))
        seeked = float(browser.execute_script(f"return {player}.currentTime"))
        curve = "document.querySelector('#timeline polyline.curve')"
        try:  # the video's per-frame scores, fetched after the click
            WebDriverWait(browser, timeout_s).until(lambda b: b.execute_script(
                f"return {curve} !== null"))
            points = len(browser.execute_script(f"return {curve}.getAttribute('points')")
                         .split())
        except Exception:  # noqa: BLE001 - reported as 0, the caller decides
            points = 0
        error = browser.execute_script(f"return {player}.error && {player}.error.message")
        time.sleep(settle_s)  # a frame painted and the cursor moved, for the screenshot
        browser.save_screenshot(str(screenshot))
        stopped = None
        try:  # playback stops at the moment's end (the page pauses it there)
            WebDriverWait(browser, max(timeout_s, end - start + 10)).until(
                lambda b: b.execute_script(f"return {player}.paused"))
            stopped = float(browser.execute_script(f"return {player}.currentTime"))
        except Exception:  # noqa: BLE001 - reported as None, the caller decides
            stopped = None
        return {"vid": vid, "rank": rank, "start": start, "end": end, "current_time": seeked,
                "stopped_at": stopped, "page_load_s": load_s, "media_error": error,
                "curve_points": points,
                "moments": len(moments)}
    finally:
        browser.quit()
