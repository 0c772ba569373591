"""Set-up files agree with each other and with the README."""

from __future__ import annotations

import re

import tomllib
import yaml
from conftest import REPO_ROOT


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def test_requirements_pyproject_and_environment_pin_the_same_versions():
    requirements = pins((REPO_ROOT / "requirements.txt").read_text().splitlines())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for items in project["optional-dependencies"].values():
        declared += [i for i in items if not i.startswith("bench[")]
    assert pins(declared) == requirements

    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        elif "=" in dep:
            name, version = dep.split("=", 1)
            conda[{"pytorch": "torch"}.get(name, name)] = version
    assert conda.pop("python") == "3.11"
    assert {**pins(pip), **conda} == requirements


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO_ROOT / "README.md").read_text()
    commands = re.findall(r"^bash run.sh (?:grid|test)$", readme, flags=re.M)
    assert commands == ["bash run.sh grid", "bash run.sh test"]
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "\nbash run.sh test\n" in ci
