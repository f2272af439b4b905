"""The gateway as an installable package: a wheel builds, installs with a `hig` command equal to `python main.py`,
and runs from a folder that holds only a configuration (code tables, specs, templates travel in the wheel)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _build_wheel(out: Path) -> Path:
    """`pip wheel .` from a clean copy of the tracked tree (no build folders left in the work tree)."""
    source = out / "source"
    skipped = shutil.ignore_patterns("__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache")

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = {".venv", ".git", "data", "build", "tests", "bench"} if Path(folder) == REPO else set()
        return top | set(skipped(folder, names))

    shutil.copytree(REPO, source, ignore=ignore)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [wheel] = (out / "dist").glob("hotline_interop_gateway-*.whl")
    return wheel


def _venv_with(wheel: Path, where: Path) -> Path:
    """A fresh virtual environment with the wheel installed (its pinned requirements come from this venv's
    site-packages, so the test needs no index); the path of its `hig`."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    [site] = (venv / "lib").glob("python3*/site-packages")
    (site / "shared-requirements.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                           "--no-deps", "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return venv / "bin" / "hig"


def test_a_wheel_installs_a_hig_command_equal_to_main_py(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    hig = _venv_with(wheel, tmp_path)
    assert hig.is_file()

    site = tmp_path / "site"  # where an installed gateway runs: its configuration, its data, no source tree
    shutil.copytree(REPO / "config", site / "config")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    installed = subprocess.run([str(hig), "--help"], cwd=site, capture_output=True, text=True, timeout=120, env=env)
    source = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env=env)
    assert installed.returncode == 0, installed.stderr
    assert " ".join(installed.stdout.split()).replace("Usage: hig", "Usage: main.py") == " ".join(source.stdout.split())

    checked = subprocess.run([str(hig), "check-config"], cwd=site, capture_output=True, text=True, timeout=120,
                             env=env)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: region 522600") and "6 mapping specs" in checked.stdout
    mapped = subprocess.run([str(hig), "map", "--check"], cwd=site, capture_output=True, text=True, timeout=300,
                            env=env)
    assert mapped.returncode == 0, mapped.stdout + mapped.stderr  # specs and fixtures came with the wheel


def test_runtime_and_development_requirements_are_split_one_sorted_pin_a_line() -> None:
    runtime = _pins(REPO / "requirements.txt")
    dev = _pins(REPO / "requirements-dev.txt")
    assert "fastapi" in runtime and "uvicorn" in runtime
    assert not {"pytest", "ruff", "mypy", "selenium", "hypothesis", "py-spy"} & set(runtime)
    assert {"pytest", "ruff", "mypy", "import-linter"} <= set(dev)
    for pins in (runtime, dev):
        assert list(pins) == sorted(pins, key=str.lower)
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text(encoding="utf-8")


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line} is not pinned"
            pins[name.split("[")[0]] = version
    return pins


def test_the_readme_stands_alone_and_names_what_a_fresh_debian_machine_needs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "apt-get install python3-venv" in readme
    assert ".venv/bin/pip install -r requirements.txt && .venv/bin/python main.py" in readme
    assert ".venv/bin/pip install -r requirements-dev.txt && .venv/bin/python -m pytest" in readme
    assert "../" not in readme  # nothing it points to is outside the repository
    outside = [url for url in re.findall(r"https?://[^\s)`'\"]+", readme)
               if not url.startswith(("http://127.0.0.1", "http://localhost"))]
    assert outside == []  # no web links either: only the gateway and its simulators on loopback
    for named in ("docs/deployment.md", "docs/operations.md", "docs/integrators.md", "docs/architecture.md"):
        assert named in readme and (REPO / named).is_file(), named
