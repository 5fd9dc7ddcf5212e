"""What the deployment tests share: the repository's paths, the Helm chart rendered
offline (helm-python-sdk, no helm binary), and the Dockerfile read as instructions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "tollway"
DOCKERFILE = REPO / "Dockerfile"

# The Kubernetes release the manifests are checked against, pinned; and the oldest one
# the chart claims in Chart.yaml (kubeVersion), checked too.
KUBERNETES = "1.33.0"
KUBERNETES_OLDEST = "1.27.0"

RELEASE = "tollway"
NAMESPACE = "llm"

Manifest = dict[str, Any]


def render(values: dict[str, Any] | None = None) -> list[Manifest]:
    """The chart's objects for ``values`` (over values.yaml), as an install renders them."""
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        document
        for path, text in sorted(files.items())
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    """The objects of one kind."""
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    """The only object of ``kind``."""
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(manifest: Manifest) -> Manifest:
    """The pod template's spec of a Deployment or a Job."""
    spec: Manifest = manifest["spec"]["template"]["spec"]
    return spec


def container_env(container: Manifest) -> dict[str, Manifest]:
    """A container's environment by variable name."""
    return {item["name"]: item for item in container.get("env", [])}


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword, its text after the keyword, its stage."""

    keyword: str
    text: str
    stage: int

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction (after any ``--flag=value``)."""
        array = self.text[self.text.index("[") :]
        words: list[str] = json.loads(array)
        return words


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    return list(_instructions(DOCKERFILE.read_text(encoding="utf-8")))


def _instructions(text: str) -> Iterator[Instruction]:
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        pending = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        yield Instruction(keyword, re.sub(r"\s+", " ", rest).strip(), stage)


def final_stage() -> list[Instruction]:
    """The instructions of the stage the image is (the last one)."""
    instructions = dockerfile()
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def image_env() -> dict[str, str]:
    """The variables the final stage's ENV instructions set (``KEY=value`` forms)."""
    env: dict[str, str] = {}
    for instruction in final_stage():
        if instruction.keyword == "ENV":
            for pair in instruction.text.split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env
