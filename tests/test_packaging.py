"""The install files agree with each other, and the package imports without the network."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch", "playwright": "playwright-python"}


def _names(requirements):
    return {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= _names(extra)
    wanted = {CONDA_NAMES.get(n, n) for n in wanted}
    conda = set()
    deps_section = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    for line in deps_section.splitlines():
        m = re.match(r"\s+-\s+([A-Za-z0-9_.-]+)\s*([<>=].*)?$", line)
        if m and m.group(1) not in ("pip", "python"):
            conda.add(m.group(1).lower())
    assert conda == wanted
    assert "-e .[" in (ROOT / "environment.yml").read_text()


def test_no_exact_torch_pin():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(re.match(r"torch(vision)?\s*==", d) for d in deps)


def test_ci_calls_make_test_and_readme_starts_with_the_commands():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make lab" in first_block and "make test" in first_block


def _install_commands(*args: str) -> str:
    # What `make` would run to create .venv (dry run, forced: nothing is installed).
    return subprocess.run(["make", "-n", "-B", ".venv/.installed", *args], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def test_torch_cpu_installs_pytorchs_cpu_build_before_the_package():
    lines = _install_commands("TORCH=cpu").splitlines()
    cpu = [i for i, line in enumerate(lines) if "download.pytorch.org/whl/cpu" in line]
    package = [i for i, line in enumerate(lines) if '-e ".[' in line]
    assert len(cpu) == 1 and "torch torchvision" in lines[cpu[0]]
    assert package and cpu[0] < package[0]  # torch first: the package's requirement is then satisfied
    assert "download.pytorch.org" not in _install_commands()  # the default install uses the registry


def test_import_is_quick_and_offline():
    code = "import vit_tutorial, vit_tutorial.profiles as p; print(p.get('smoke').name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "smoke", out.stderr


def test_readme_has_no_placeholder():
    readme = (ROOT / "README.md").read_text()
    assert not re.search(r"TO-COME|\bFILL\b|\bTODO\b", readme)
