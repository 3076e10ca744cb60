"""The ``sampler-explorer`` command line: ``serve`` next to ``preview``, and ``panel serve app/main.py``."""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT), env.get('PYTHONPATH', '')])
    return env


def _run(*args, **kw):
    return subprocess.run([sys.executable, '-m', 'app.cli', *args], capture_output=True,
                          text=True, env=_env(), cwd=kw.pop('cwd', ROOT), timeout=300, **kw)


def _get(url: str, deadline: float) -> str:
    """GET ``url``, retrying until it answers or ``deadline`` (monotonic) passes."""
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return resp.read().decode('utf8', errors='replace')
        except OSError as ex:
            last = ex
            time.sleep(0.2)  # polling a server that is starting: a condition, not a fixed wait
    raise AssertionError(f'{url} did not answer: {last}')


def test_cli_help_lists_every_serve_flag():
    out = _run('serve', '--help')
    assert out.returncode == 0
    for flag in ('dataset', '--workdir', '--port', '--allow-root', '--show', '--address',
                 '--backend', '--upload-dir'):
        assert flag in out.stdout
    top = _run('--help')
    assert 'serve' in top.stdout and 'preview' in top.stdout


def test_cli_help_and_preview_import_no_gui():
    code = ('import sys\n'
            'from app.cli import build_parser\n'
            'try:\n'
            '    build_parser().parse_args(["serve", "--help"])\n'
            'except SystemExit:\n'
            '    pass\n'
            'bad = [m for m in ("panel", "holoviews", "bokeh") if m in sys.modules]\n'
            'assert not bad, bad\n')
    subprocess.run([sys.executable, '-c', code], check=True, env=_env(), capture_output=True)


def test_serve_loads_the_dataset_before_importing_panel():
    # serve prints its URL once the dataset and the grid's arrays are loaded; Panel is
    # imported after that, while the browser opens the page (app.cli.serve)
    code = ('import sys\n'
            'from app.state import ExplorerState\n'
            'from app.browse import BrowseFacts\n'
            'BrowseFacts.of(ExplorerState("shapes8", backend=None).shared)\n'
            'bad = [m for m in ("panel", "holoviews", "bokeh") if m in sys.modules]\n'
            'assert not bad, bad\n')
    res = subprocess.run([sys.executable, '-c', code], env=_env(), capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr[-2000:]


def test_cli_preview_still_works(tmp_path):
    out = _run('preview', 'shapes8', '--out', str(tmp_path / 'p.png'), '--num', '2',
               '--window', '64', '64')
    assert out.returncode == 0, out.stderr
    assert (tmp_path / 'p.png').exists() and '2 positives' in out.stdout


def test_cli_serve_refuses_a_missing_dataset(tmp_path):
    out = _run('serve', str(tmp_path / 'nope.kwcoco.json'), '--port', '0')
    assert out.returncode == 2
    assert 'does not exist' in out.stderr


def test_cli_serve_reports_a_port_in_use(tmp_path):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        res = subprocess.run([sys.executable, '-m', 'app.cli', 'serve', '--port', str(port),
                              '--address', '127.0.0.1', '--backend', 'none'],
                             capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120)
    assert res.returncode == 2
    assert f'cannot listen on 127.0.0.1:{port}' in res.stderr
    assert 'Traceback' not in res.stderr and 'serving' not in res.stdout


def test_cli_serve_prints_the_url_and_binds_localhost(tmp_path):
    proc = subprocess.Popen([sys.executable, '-m', 'app.cli', 'serve', '--port', '0',
                             '--backend', 'none'], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env(), cwd=tmp_path)
    try:
        url = None
        for line in proc.stdout:
            match = re.search(r'at (http://\S+)', line)
            if match:
                url = match.group(1)
                break
        assert url is not None and url.startswith('http://localhost:')
        html = _get(url, time.monotonic() + 60)
        assert 'sampler-explorer' in html
        port = int(url.rsplit(':', 1)[1].strip('/'))
        # not reachable on another address of this machine
        try:
            addrs = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None,
                                                         socket.AF_INET)}
        except OSError:  # the host name does not resolve: no other address to try
            addrs = set()
        for addr in addrs - {'127.0.0.1'}:
            with socket.socket() as sock:
                sock.settimeout(2)
                assert sock.connect_ex((addr, port)) != 0, addr
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_panel_serve_main_with_args(tmp_path):
    with socket.socket() as sock:
        sock.bind(('localhost', 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, '-m', 'panel', 'serve', str(ROOT / 'app' / 'main.py'),
                             '--port', str(port), '--args', 'shapes8', '--backend', 'none'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            cwd=tmp_path)
    try:
        html = _get(f'http://localhost:{port}/main', time.monotonic() + 90)
        assert 'sampler-explorer' in html and 'bokeh' in html.lower()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _preview_backends():
    """The choices ``preview --backend`` offers in its help."""
    from app.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == 'command')
    action = next(a for a in sub.choices['preview']._actions if a.dest == 'backend')
    return [str(c) for c in action.choices]


def test_cli_preview_accepts_every_backend_its_help_offers(tmp_path, capsys):
    """``preview --backend none`` was refused although the help offers none (tour of issue 10)."""
    import kwimage

    from app.cli import main
    help_text = _run('preview', '--help').stdout
    offered = _preview_backends()
    assert 'none' in offered and all(name in help_text for name in offered)
    pictures = {}
    for name in offered:
        out = tmp_path / f'{name}.png'
        assert main(['preview', 'shapes8', '--backend', name, '--num', '2', '--window', '48', '64',
                     '--out', str(out), '--workdir', str(tmp_path / 'cache')]) == 0, name
        pictures[name] = kwimage.imread(str(out))
    # every backend reads the same pixels: the same grid
    first = pictures[offered[0]]
    assert all((pic.shape == first.shape and (pic == first).all()) for pic in pictures.values())
    assert 'error' not in capsys.readouterr().err


def test_cli_runs_print_no_cpu_nms_warning(tmp_path):
    """Generating a demo made kwimage warn 'optional cpu_nms is not available' on every run."""
    env = {**_env(), 'SAMPLER_EXPLORER_DEMOS': str(tmp_path / 'demos')}   # generated anew
    out = subprocess.run([sys.executable, '-m', 'app.cli', 'preview', 'shapes8', '--num', '1',
                          '--out', str(tmp_path / 'p.png')], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / 'demos').is_dir()
    assert 'cpu_nms is not available' not in out.stderr + out.stdout


def test_cli_silences_only_the_cpu_nms_warning():
    """The filter is narrow: the same text from another module, or another kwimage warning,
    still shows."""
    import warnings

    from app.cli import silence_known_warnings
    text = "optional cpu_nms is not available: No module named 'kwimage_ext'"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        silence_known_warnings()
        for message, module in [(text, 'kwimage.algo.algo_nms'), (text, 'mypackage'),
                                ('something else', 'kwimage.algo.algo_nms')]:
            warnings.warn_explicit(message, UserWarning, 'x.py', 1, module=module)
    assert [(str(w.message), w.filename) for w in caught] == [(text, 'x.py'),
                                                              ('something else', 'x.py')]


def test_serve_freezes_the_dataset_before_the_first_session(tmp_path):
    """The dataset and libraries live as long as the server: ``serve`` moves them out of
    the garbage collector's reach (``gc.freeze``) before it serves, so its full
    collections walk only the sessions' objects; the youngest generation is collected
    every 20,000 allocations instead of 700."""
    import asyncio
    import gc
    import threading

    from app import cli
    from app.pools import get_shared

    args = cli.parse_serve_args(['--port', '0', '--workdir', str(tmp_path / 'cache')])
    seen = {}

    def ready(server, url):
        def check():
            shared = get_shared(args.dataset, backend=cli.backend_arg(args.backend),
                                workdir=args.workdir)
            tracked = {id(o) for o in gc.get_objects()}     # frozen objects are not listed
            seen['frozen'] = gc.get_freeze_count()
            seen['thresholds'] = gc.get_threshold()
            seen['dataset tracked'] = id(shared.dset.dataset) in tracked
            seen['targets tracked'] = id(shared.sampler.regions.targets) in tracked
            server.io_loop.add_callback(server.io_loop.stop)
        server.io_loop.add_callback(check)

    def run():
        asyncio.set_event_loop(asyncio.new_event_loop())
        cli.serve(args, ready=ready)

    thread = threading.Thread(target=run, daemon=True)
    thresholds = gc.get_threshold()
    try:
        thread.start()
        thread.join(300)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert not thread.is_alive()
    assert seen['frozen'] > 0
    assert seen['thresholds'] == (20_000, 10, 10)     # young objects collected less often
    assert (seen['dataset tracked'], seen['targets tracked']) == (False, False)
