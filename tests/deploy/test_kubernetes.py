"""The Kubernetes manifests in deploy/kubernetes/: each document valid against the Kubernetes
API schema (strict: a misspelt field is an error, not ignored), no secret written into one,
and every container's command one that `harness` knows."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from tests.cli.support import harness_command

MANIFESTS = sorted((Path(__file__).parents[2] / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES = "1.31.0"
SECRET_WORDS = ("PASSWORD", "SECRET", "KEY", "TOKEN")


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}:{document['kind']}", document)
        for path in MANIFESTS
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document.get("spec", {})
    spec = spec.get("jobTemplate", {}).get("spec", spec)
    return spec.get("template", {}).get("spec", {}).get("containers", [])


def test_there_is_a_worker_a_report_and_a_migration() -> None:
    kinds = sorted(document["kind"] for _, document in documents())
    assert kinds == ["ConfigMap", "CronJob", "Deployment", "Job", "Secret"]


def named(value: object) -> str:
    return value if isinstance(value, str) else ""


@pytest.mark.parametrize(("name", "document"), documents(), ids=named)
def test_the_manifest_is_valid_kubernetes(name: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES, strict=True)


@pytest.mark.parametrize(("name", "document"), documents(), ids=named)
def test_no_secret_is_written_into_a_manifest(name: str, document: dict[str, Any]) -> None:
    written = {**document.get("data", {}), **document.get("stringData", {})}
    for container in containers(document):
        written.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
    for key, value in written.items():
        if any(word in key for word in SECRET_WORDS):
            assert value in ("", None), f"{name}: {key} holds a value"
        if "://" in str(value):
            assert urlsplit(str(value)).password is None, f"{name}: {key} holds a password"


@pytest.mark.parametrize(
    "command",
    sorted({tuple(c["command"]) for _, d in documents() for c in containers(d)}),
    ids=" ".join,
)
def test_each_container_runs_a_command_harness_knows(command: tuple[str, ...]) -> None:
    assert command[0] == "harness"
    known = subprocess.run(
        [*harness_command(), *command[1:], "--help"], capture_output=True, text=True, timeout=60
    )
    assert known.returncode == 0, known.stderr
