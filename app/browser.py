"""Run the explorer in a subprocess and open it in Debian's chromium.

One place for what the browser tests, ``benchmarks/bench_app.py`` and
``scripts/screenshot.py`` all need: start ``sampler-explorer serve --port 0``,
wait until it prints its URL, stop it, and launch chromium with the flags that
work as root in a container. Nothing here is imported by the app itself.

Example:
    >>> # xdoctest: +SKIP("starts a server")
    >>> from app.browser import spawn_server, stop_server
    >>> proc, url = spawn_server(['--workdir', '/tmp/explorer-cache'])
    >>> print(url)                 # e.g. http://localhost:38417/
    >>> stop_server(proc)
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Debian's chromium (``apt-get install -y chromium``); Playwright's own download does not work here
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']
_URL = re.compile(r'serving .* at (http://\S+)')


def spawn_server(args=(), cwd=None, env=None, timeout: float = 120.0, on_output=None):
    """Start ``sampler-explorer serve --port 0 *args``; return ``(process, url)`` once it listens.

    The server's output is drained in a thread after the URL line (each line handed to
    ``on_output`` when given), so it never blocks on a full pipe. If it exits or stays
    silent for ``timeout`` seconds, it is killed and a RuntimeError carries what it printed.
    """
    cmd = [sys.executable, '-m', 'app.cli', 'serve', '--port', '0'] + [str(a) for a in args]
    env = dict(os.environ if env is None else env)
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT), env.get('PYTHONPATH', '')])
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    lines: list = []
    found: list = []
    ready = threading.Event()      # set at the URL line, or when the output ends

    def read():
        for line in proc.stdout:
            if not found:
                lines.append(line)
                match = _URL.search(line)
                if match:
                    found.append(match.group(1))
                    ready.set()
            elif on_output is not None:
                on_output(line)
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(timeout)
    if found:
        return proc, found[0]
    proc.kill()
    raise RuntimeError(f'the server did not start ({" ".join(cmd)}):\n' + ''.join(lines))


def stop_server(proc, timeout: float = 20.0) -> None:
    """Terminate a server from :func:`spawn_server`; kill it if it does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
        proc.wait()


def launch_chromium(playwright, executable: str = CHROMIUM):
    """``playwright.chromium.launch`` of Debian's chromium; FileNotFoundError when it is missing."""
    if not os.path.exists(executable):
        raise FileNotFoundError(f'{executable} is missing: install it with '
                                f'"apt-get install -y chromium" (scripts/run_tests.sh does)')
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
