"""Helpers shared by the real-browser tests (Playwright driving Debian's chromium).

A missing chromium FAILS a test (it is never skipped); a failed test leaves a full-page
screenshot in ``test-artifacts/``.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from app.browser import launch_chromium

ARTIFACTS = Path(__file__).resolve().parents[1] / 'test-artifacts'


def wait_until(fn, page, timeout: float = 30.0) -> None:
    """Poll ``fn()`` until it is true, ``timeout`` seconds at most (between polls the
    browser renders a frame)."""
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f'condition not met within {timeout} s: {fn}')
        page.evaluate('() => new Promise(r => requestAnimationFrame(() => r()))')


def screenshot_if_failed(page, request, n_failed: int) -> None:
    """Save ``page`` as ``FAILED-<test>.png`` when the test has failed since ``n_failed``."""
    if request.session.testsfailed > n_failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f'FAILED-{request.node.name}.png'), full_page=True)


@contextlib.contextmanager
def chromium_page(request, timeout_ms: int, viewport=(1500, 1300)):
    """A page of a new chromium for one test (waits default to ``timeout_ms``)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        try:
            browser = launch_chromium(p)
        except FileNotFoundError as ex:
            pytest.fail(f'{ex}; the browser tests cannot be skipped')
        pg = browser.new_page(viewport={'width': viewport[0], 'height': viewport[1]})
        pg.set_default_timeout(timeout_ms)
        n_failed = request.session.testsfailed
        try:
            yield pg
        finally:
            screenshot_if_failed(pg, request, n_failed)
            browser.close()
