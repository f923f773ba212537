"""A headless Chromium for tests of pages Hamgara writes or serves, and checks of what loaded.

Debian's chromium and chromium-driver (`./setup.sh test` installs both) run under selenium, which
is never allowed to fetch a driver: the paths are given, so nothing is downloaded. Tests get one
browser per session through the `chromium` fixture (tests/conftest.py); a test opens its page with
`open_page` and asks:

- `media_loaded(driver, timeout)`: every <audio>/<video> element, loaded or not, with its error
  code and duration;
- `images_loaded(driver, timeout)`: every <img>, loaded or not, with its natural size;
- `failures(statuses)`: one line per element that did not load, naming it (empty when all did);
- `wait_for(driver, condition, timeout)`: wait for a JavaScript condition, failing with the
  condition and the timeout in the message;
- `visible_text(driver)`, `console_errors(driver)`: what a reader sees, what the page logged.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import JavascriptException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

INSTALL = "./setup.sh test"
ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB; Chromium then crashes on big pages
    "--autoplay-policy=no-user-gesture-required",  # a test may play audio without a click
    "--disable-gpu",
    "--window-size=1280,1000",
)
# HTMLMediaElement.error.code
MEDIA_ERRORS = {1: "MEDIA_ERR_ABORTED", 2: "MEDIA_ERR_NETWORK", 3: "MEDIA_ERR_DECODE", 4: "MEDIA_ERR_SRC_NOT_SUPPORTED"}


class BrowserError(RuntimeError):
    """Chromium or chromedriver is missing or does not start; the message says how to install them."""


@dataclass(frozen=True)
class MediaStatus:
    """One <audio> or <video> element after the wait: loaded means its metadata arrived (readyState
    >= 1) without an error; `error` is the MediaError code, `duration` in seconds (None when not
    known)."""

    tag: str
    src: str
    loaded: bool
    ready_state: int
    network_state: int
    error: int | None
    error_message: str
    duration: float | None

    @property
    def problem(self) -> str | None:
        """Why this element is not playable, or None when it is (loaded, with a duration above 0)."""
        if self.error is not None:
            name = MEDIA_ERRORS.get(self.error, "unknown")
            return f"<{self.tag}> {self.src!r}: error {self.error} ({name}) {self.error_message}".rstrip()
        if not self.loaded:
            return (
                f"<{self.tag}> {self.src!r}: not loaded (readyState {self.ready_state}, "
                f"networkState {self.network_state})"
            )
        if not self.duration or self.duration <= 0:
            return f"<{self.tag}> {self.src!r}: loaded, but its duration is {self.duration}"
        return None


@dataclass(frozen=True)
class ImageStatus:
    """One <img> element after the wait: loaded means complete with a natural width above 0."""

    src: str
    alt: str
    complete: bool
    natural_width: int
    natural_height: int

    @property
    def loaded(self) -> bool:
        """Whether the image arrived and decoded (a broken image is complete with width 0)."""
        return self.complete and self.natural_width > 0

    @property
    def problem(self) -> str | None:
        """Why this image is not shown, or None when it is."""
        if self.loaded:
            return None
        state = "broken (natural width 0)" if self.complete else "still loading"
        return f"<img> {self.src!r} (alt {self.alt!r}): {state}"


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) on PATH; `BrowserError` naming what is missing and `./setup.sh test`."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver (chromium-driver)", driver)) if not path]
    if missing:
        raise BrowserError(
            f"{' and '.join(missing)} not found on PATH: the page tests need Debian's chromium and chromium-driver; "
            f"`{INSTALL}` installs them (or: apt-get install chromium chromium-driver)"
        )
    assert chromium and driver
    return chromium, driver


def start_chromium(arguments: tuple[str, ...] = ()) -> WebDriver:
    """A headless Chromium under chromedriver, both from PATH (never downloaded), with `ARGUMENTS`
    and any extra `arguments`. The caller quits it; `headless_chromium` does that for you."""
    chromium, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (*ARGUMENTS, *arguments):
        options.add_argument(argument)
    # What the page logs (console.error, failed loads), for console_errors().
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except WebDriverException as e:
        raise BrowserError(
            f"chromium ({chromium}) did not start under chromedriver ({driver_path}): {e.msg}. "
            f"Both must be Debian's, of one version: `{INSTALL}` installs them"
        ) from e
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


@contextmanager
def headless_chromium(arguments: tuple[str, ...] = ()) -> Iterator[WebDriver]:
    """`start_chromium`, quit when the block ends."""
    driver = start_chromium(arguments)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: WebDriver, page: str | Path, timeout: float = 30.0) -> None:
    """Open a file (a Path, as file://) or a URL, and wait until the document has loaded."""
    driver.get(Path(page).resolve().as_uri() if isinstance(page, Path) else page)
    wait_for(driver, "document.readyState === 'complete'", timeout, "the page to load")


def wait_for(driver: WebDriver, condition: str, timeout: float = 10.0, what: str | None = None) -> Any:
    """Wait until the JavaScript expression `condition` is truthy on the current page; return its
    value. Past `timeout` seconds it fails (AssertionError) naming `what`, the expression, the
    timeout and the last JavaScript error it raised, if any."""
    last_error: list[str] = []

    def check(d: WebDriver) -> Any:
        try:
            return d.execute_script(f"return ({condition});")
        except JavascriptException as e:
            last_error[:] = [e.msg or str(e)]
            return False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(check)
    except TimeoutException:
        raised = f"; it last raised: {last_error[0]}" if last_error else ""
        raise AssertionError(
            f"timed out after {timeout:g} s waiting for {what or 'a condition'} on {driver.current_url}: "
            f"`{condition}` stayed false{raised}"
        ) from None


_MEDIA = "Array.from(document.querySelectorAll('audio, video'))"

# A player with preload="none" fetches nothing until played: asking for its metadata is what a
# click would start, so the check is "would it play", not "did the page preload it".
_KICK_MEDIA = f"""
{_MEDIA}.forEach(e => {{
  if (e.preload === 'none' && e.readyState === 0 && !e.error) {{ e.preload = 'metadata'; e.load(); }}
}});"""

_MEDIA_STATUS = f"""
return {_MEDIA}.map(e => {{
  const source = e.querySelector('source');
  return {{
    tag: e.tagName.toLowerCase(),
    src: e.getAttribute('src') || (source && source.getAttribute('src')) || e.currentSrc || '',
    readyState: e.readyState, networkState: e.networkState,
    error: e.error ? e.error.code : null, message: e.error ? (e.error.message || '') : '',
    duration: Number.isFinite(e.duration) ? e.duration : null,
  }};
}});"""


def media_loaded(driver: WebDriver, timeout: float = 10.0) -> list[MediaStatus]:
    """Every <audio> and <video> of the current page, in document order, once each has its
    metadata (readyState >= 1) or an error, or `timeout` seconds have passed (those still waiting
    come back not loaded). Check `failures(...)` or each status's `problem`."""
    driver.execute_script(_KICK_MEDIA)
    try:
        wait_for(driver, f"{_MEDIA}.every(e => e.readyState >= 1 || e.error !== null)", timeout, "media to load")
    except AssertionError:
        pass  # reported per element below, naming each one still waiting
    return [
        MediaStatus(
            tag=s["tag"],
            src=s["src"],
            loaded=s["error"] is None and s["readyState"] >= 1,
            ready_state=s["readyState"],
            network_state=s["networkState"],
            error=s["error"],
            error_message=s["message"],
            duration=s["duration"],
        )
        for s in driver.execute_script(_MEDIA_STATUS)
    ]


# A lazy image below the fold never loads in a window nobody scrolls: the check asks for it.
_IMAGES_EAGER = "Array.from(document.images).forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });"
_IMAGE_STATUS = """
return Array.from(document.images).map(i => ({
  src: i.getAttribute('src') || i.currentSrc || '', alt: i.alt || '',
  complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,
}));"""


def images_loaded(driver: WebDriver, timeout: float = 10.0) -> list[ImageStatus]:
    """Every <img> of the current page, in document order, once each is complete (loaded or
    broken) or `timeout` seconds have passed."""
    driver.execute_script(_IMAGES_EAGER)
    try:
        wait_for(driver, "Array.from(document.images).every(i => i.complete)", timeout, "images to load")
    except AssertionError:
        pass  # reported per image below
    return [
        ImageStatus(s["src"], s["alt"], s["complete"], s["naturalWidth"], s["naturalHeight"])
        for s in driver.execute_script(_IMAGE_STATUS)
    ]


def failures(statuses: list[MediaStatus] | list[ImageStatus]) -> list[str]:
    """One line per element that did not load, naming it and why; empty when every one did."""
    return [s.problem for s in statuses if s.problem is not None]


def visible_text(driver: WebDriver) -> str:
    """The text of the current page as a reader sees it (hidden elements left out)."""
    return driver.find_element(By.TAG_NAME, "body").text


def console_errors(driver: WebDriver) -> list[str]:
    """The errors the page logged since the last call (console.error, uncaught exceptions, failed
    loads): Chromium hands each log entry out once."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
