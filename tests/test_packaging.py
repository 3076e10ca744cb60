"""Packaging invariants: one dependency list, no GUI in the library, one test command."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    return re.sub(r'\s+', '', req).lower().replace('_', '-')


def _pyproject_requirements():
    try:
        import tomllib
    except ImportError:  # pragma: no cover - python < 3.11
        import tomli as tomllib
    data = tomllib.loads((ROOT / 'pyproject.toml').read_text())
    project = data['project']
    reqs = list(project['dependencies'])
    reqs += project['optional-dependencies'].get('test', [])
    return sorted({_norm(r) for r in reqs})


def _environment_requirements():
    import yaml
    env = yaml.safe_load((ROOT / 'environment.yml').read_text())
    pip = next(d['pip'] for d in env['dependencies'] if isinstance(d, dict) and 'pip' in d)
    return sorted({_norm(r) for r in pip if not r.startswith('-e')})


def test_packaging_environment_matches_pyproject():
    assert _environment_requirements() == _pyproject_requirements()


def test_packaging_core_imports_no_gui_or_torch():
    # nor the heavy libraries (networkx through kwcoco, cv2 through kwimage): every
    # DataLoader worker imports sampler_core, and they are imported where they are used
    code = ('import sys, sampler_core, sampler_core.config\n'
            'bad = sorted(m for m in sys.modules if m.split(".")[0] in '
            '{"panel", "holoviews", "bokeh", "torch", "ndsampler", "networkx", "kwcoco", '
            '"kwimage", "cv2"})\n'
            'print(",".join(bad))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ''


@pytest.mark.parametrize('path', sorted(str(p.relative_to(ROOT))
                                        for p in (ROOT / 'sampler_core').rglob('*.py')))
def test_packaging_core_source_never_imports_gui(path):
    text = (ROOT / path).read_text()
    assert not re.search(r'^\s*(import|from)\s+(panel|holoviews|bokeh|ndsampler)\b', text, re.M)


def test_packaging_ci_runs_the_readme_test_command():
    readme = (ROOT / 'README.md').read_text()
    ci = (ROOT / '.ci' / 'run').read_text()
    assert 'bash scripts/run_tests.sh' in readme
    assert re.search(r'^exec bash scripts/run_tests\.sh\s*$', ci, re.M)
