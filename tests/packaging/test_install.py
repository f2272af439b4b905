"""The gateway as an installable package: a wheel builds, declares exactly the runtime pins, installs with a `hig`
command equal to `python main.py`, and serves from a folder that holds only a configuration (code tables, specs,
the WSDL and the dashboard's templates travel in the wheel; the offline docs' assets in its requirements)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.hardening.live_gateway import free_port

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("hig", "gateway", "adapters", "mapping", "contracts", "simulators")  # pyproject.toml's packages


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


@dataclass(frozen=True)
class Installed:
    """The wheel, once built, and the `hig` of a fresh virtual environment it was installed in."""

    wheel: Path
    hig: Path
    home: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    where = tmp_path_factory.mktemp("install")
    wheel = _build_wheel(where)
    return Installed(wheel, _venv_with(wheel, where), where)


def _site(installed: Installed, name: str) -> Path:
    """Where an installed gateway runs: a copy of the checkout's configuration, its data, no source tree."""
    site = installed.home / name
    shutil.copytree(REPO / "config", site / "config")
    return site


def _env(installed: Installed, **more: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(installed.home), **more}


def test_a_wheel_installs_a_hig_command_equal_to_main_py(installed: Installed) -> None:
    hig = installed.hig
    assert hig.is_file()

    site = _site(installed, "site")
    env = _env(installed)
    done = subprocess.run([str(hig), "--help"], cwd=site, capture_output=True, text=True, timeout=120, env=env)
    source = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert " ".join(done.stdout.split()).replace("Usage: hig", "Usage: main.py") == " ".join(source.stdout.split())

    checked = subprocess.run([str(hig), "check-config"], cwd=site, capture_output=True, text=True, timeout=120,
                             env=env)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: region 522600") and "6 mapping specs" in checked.stdout
    mapped = subprocess.run([str(hig), "map", "--check"], cwd=site, capture_output=True, text=True, timeout=300,
                            env=env)
    assert mapped.returncode == 0, mapped.stdout + mapped.stderr  # specs and fixtures came with the wheel


def test_the_installed_hig_serves_its_dashboard_docs_and_wsdl_from_the_wheel(installed: Installed) -> None:
    site = _site(installed, "serving")
    port = free_port()
    env = _env(installed, HIG_DEMO__SIMULATORS="false", HIG_POLLERS="false", HIG_WORKERS="false")
    log = site / "hig.log"
    with log.open("wb") as out:
        server = subprocess.Popen([str(installed.hig), "serve", "--port", str(port)], cwd=site, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10, trust_env=False) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    ready = http.get("/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, log.read_text(encoding="utf-8", errors="replace")[-3000:]
                assert time.monotonic() < deadline, "the installed gateway was not ready in 120 s"
                time.sleep(0.2)
            assert ready.json()["store_health"]["store"] == "sqlite"
            assert (site / "data" / "gateway.db").is_file()  # its store, under the folder it runs in

            login = http.get("/ops/login")  # a template of the wheel's
            assert login.status_code == 200 and login.headers["content-type"].startswith("text/html")
            assert "运维登录" in login.text and 'name="token"' in login.text

            docs = http.get("/docs")
            assert docs.status_code == 200
            [script] = re.findall(r'src="([^"]*swagger-ui-bundle\.js)"', docs.text)
            assert not script.startswith("http"), script  # served by the gateway, not a CDN
            bundle = http.get(script)
            assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text

            wsdl = http.get("/soap/province-12345-soap", params={"wsdl": ""})  # the contract's WSDL, in the wheel
            assert wsdl.status_code == 200 and "definitions" in wsdl.text and url in wsdl.text
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_the_wheel_requires_every_runtime_pin_and_no_development_tool(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        [metadata] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        lines = wheel.read(metadata).decode("utf-8").splitlines()
    required: dict[str, str] = {}
    for line in lines:
        if line.startswith("Requires-Dist:"):
            found = re.fullmatch(r"Requires-Dist: ([A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
            assert found, f"not an exact pin: {line}"
            required[_normalized(found.group(1))] = found.group(2)
    runtime = {_normalized(name): version for name, version in _pins(REPO / "requirements.txt").items()}
    assert required == runtime
    development_only = {_normalized(name) for name in _pins(REPO / "requirements-dev.txt")} - set(runtime)
    assert {"pytest", "ruff", "mypy", "aiosmtpd", "selenium"} <= development_only
    assert not development_only & set(required)


def test_every_package_the_code_imports_is_a_runtime_requirement() -> None:
    """What the installed code imports (top-level imports of the wheel's packages, not only through another
    package) is required by name: nothing it runs on is left to come along by chance."""
    runtime = {_normalized(name) for name in _pins(REPO / "requirements.txt")}
    distributions = importlib.metadata.packages_distributions()
    imported: dict[str, str] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                         else [])
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in PACKAGES and top != "__future__":
                        imported.setdefault(top, str(path.relative_to(REPO)))
    assert {"fastapi", "redis", "zeep", "yaml"} <= set(imported)
    undeclared = {module: where for module, where in imported.items()
                  if not {_normalized(d) for d in distributions.get(module, [module])} & runtime}
    assert undeclared == {}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


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
