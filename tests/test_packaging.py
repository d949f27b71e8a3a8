"""Issue 10 item 30: dependency floors exclude releases with known vulnerabilities."""

import re
import tomllib
from pathlib import Path

import pytest

PYPROJECT = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())


def _floor(requirements: list[str], name: str) -> tuple[int, ...]:
    for req in requirements:
        match = re.fullmatch(rf"{re.escape(name)}(\[[^\]]*\])?>=([0-9.]+)", req)
        if match:
            return tuple(int(x) for x in match.group(2).split("."))
    raise AssertionError(f"no floor for {name}")


@pytest.mark.parametrize("group, name, fixed", [
    (None, "pyarrow", (14, 0, 1)),  # CVE-2023-47248
    (None, "torch", (2, 6)),  # CVE-2025-32434
    (None, "pillow", (10, 3)),  # CVE-2024-28219
    ("serve", "starlette", (0, 49, 1)),  # CVE-2025-62727
    ("serve", "h11", (0, 16)),  # CVE-2025-43859
])
def test_floors_exclude_vulnerable_releases(group, name, fixed):
    project = PYPROJECT["project"]
    reqs = project["dependencies"] if group is None else project["optional-dependencies"][group]
    assert _floor(reqs, name) >= fixed
