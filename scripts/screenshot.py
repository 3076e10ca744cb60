"""Make the README screenshot from the running app: ``python scripts/screenshot.py``.

Starts ``sampler-explorer serve --port 0`` on the demo, opens it in Debian's chromium
(Playwright), waits for the overview, the galleries and the statistics, clicks the
overview so the detail pane shows a window, and writes ``assets/screenshot.png``.

Usage:
    python scripts/screenshot.py [--out assets/screenshot.png] [--dataset shapes8]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.browser import CHROMIUM, launch_chromium, spawn_server, stop_server  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=str(ROOT / 'assets' / 'screenshot.png'))
    parser.add_argument('--dataset', default='shapes8')
    parser.add_argument('--chromium', default=CHROMIUM)
    args = parser.parse_args(argv)
    import tempfile

    from playwright.sync_api import expect, sync_playwright
    with tempfile.TemporaryDirectory() as workdir:
        proc, url = spawn_server([args.dataset, '--workdir', workdir], cwd=ROOT)
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p, args.chromium)
                page = browser.new_page(viewport={'width': 1600, 'height': 1250})
                page.set_default_timeout(60_000)
                expect.set_options(timeout=60_000)
                page.goto(url + '?window_dims=%5B160%2C160%5D&gid=4')
                canvas = page.locator('.overview canvas').first
                canvas.wait_for(state='visible')
                expect(page.locator('.status')).to_contain_text('window 160x160')
                page.locator('.stats-numbers').wait_for()
                expect(page.locator('.thumb').first).to_be_visible()
                box = canvas.bounding_box()
                page.mouse.click(box['x'] + box['width'] * 0.45, box['y'] + box['height'] * 0.55)
                page.locator('.params-table').wait_for()
                expect(page.locator('.detail canvas').first).to_be_visible()
                page.mouse.move(5, 5)          # no hover tooltip in the picture
                expect(page.locator('.bk-tooltip').first).to_be_hidden()
                out = Path(args.out)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
                browser.close()
        finally:
            stop_server(proc)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
