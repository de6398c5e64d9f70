"""Reading Dockerfiles, for the tests that check the images without a Docker engine."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse_instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions, with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return instructions


def split_stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """One list per build stage, each starting with its FROM."""
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """The build stages, each a list of instructions starting with its FROM."""
    return split_stages(parse_instructions(text))


def arguments_of(stage: list[Instruction], keyword: str) -> list[str]:
    return [instruction.arguments for instruction in stage if instruction.keyword == keyword]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    """ENV key=value pairs of a stage (the key=value form only; the old `ENV k v` is unused)."""
    env: dict[str, str] = {}
    for arguments in arguments_of(stage, "ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            env[key] = value
    return env
