"""One source of truth for versions: requirements.txt; environment.yml and pyproject follow it."""
import re
import tomllib

import yaml

from conftest import ROOT


def pins():
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name, version = re.split(r"==", line)
            out[name.lower()] = version
    return out


def test_requirements_are_exact_pins_with_the_required_versions():
    p = pins()
    assert p["torch"] == "2.13.0"  # the CPU wheel; looser pins pull a CUDA build
    assert p["jupyter-book"].startswith("1.")  # 2.x ignores _config.yml/_toc.yml
    for pkg in ("papermill", "nbval", "matplotlib", "seaborn", "pandas", "tqdm", "ipykernel", "pytest"):
        assert pkg in p


def test_constraints_pin_every_requirement_to_the_same_version():
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    frozen = dict(line.lower().split("==") for line in lines if "==" in line and not line.startswith("#"))
    assert "-c constraints.txt" in (ROOT / "requirements.txt").read_text()
    for name, version in pins().items():
        assert frozen[name].split("+")[0] == version.split("+")[0], name


def test_environment_yml_installs_requirements_txt():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r requirements.txt" in pip and "-e ." in pip


def test_pyproject_dependencies_are_pinned_in_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    p = pins()
    for dep in project["dependencies"]:
        assert re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower() in p
