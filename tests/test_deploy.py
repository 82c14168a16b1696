"""deploy/ holds a container image, a Ray cluster launcher config and KubeRay manifests. They must
parse, agree with each other (image, Ray version, ports, the model-host resource) and with the
code: every `cadre` command they run exists with those options, every CADRE_* variable they set
is one the code reads, every file and workflow they name is there."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.workflow.catalog import load_catalog
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
MANIFESTS = sorted((DEPLOY / "kuberay").glob("*.yaml"))
SOURCES = "\n".join(p.read_text() for p in (ROOT / "orchestrator").rglob("*.py"))


def documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in [*MANIFESTS, DEPLOY / "cluster.yaml"]:
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), f"{path}: not a mapping"
            found.append((path, doc))
    return found


def walk(node: Any) -> list[Any]:
    """Every value in a parsed document."""
    if isinstance(node, dict):
        return [node, *(v for value in node.values() for v in walk(value))]
    if isinstance(node, list):
        return [node, *(v for value in node for v in walk(value))]
    return [node]


def cadre_commands() -> list[list[str]]:
    """Every `cadre ...` invocation in deploy/, as argument lists after `cadre`."""
    commands = []
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE, flags=re.M)
    assert cmd, "the Dockerfile has no CMD"
    commands.append(yaml.safe_load(cmd.group(1)))
    for _, doc in documents():
        for value in walk(doc):
            image = value.get("image", "") if isinstance(value, dict) else ""
            if image.startswith("ghcr.io/cadre-dev") and "args" in value:
                commands.append(value["args"])  # container args go to the `cadre` entrypoint
            if isinstance(value, str):
                for match in re.finditer(r"(?:^|[\s;&])cadre ([^&;\n>]+)", value):
                    commands.append(shlex.split(match.group(1)))
    return commands


def test_every_file_parses_and_kuberay_kinds_are_known() -> None:
    kinds = {doc.get("kind") for path, doc in documents() if "kuberay" in str(path)}
    assert {"RayCluster", "RayJob", "Deployment", "Service", "Secret"} <= kinds
    assert re.search(r'^ENTRYPOINT \["cadre"\]$', DOCKERFILE, flags=re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'cadre = "orchestrator.cli:main"' in pyproject  # the entrypoint the image calls


@pytest.mark.parametrize("args", cadre_commands(), ids=lambda a: " ".join(a[:2]))
def test_every_cadre_command_exists_with_its_options(args: list[str]) -> None:
    words = [a for a in args if not a.startswith("-")]
    help_text = CliRunner().invoke(app, [words[0], "--help"], env={"COLUMNS": "200"})
    assert help_text.exit_code == 0, f"`cadre {words[0]}` does not exist"
    for option in (a.split("=")[0] for a in args if a.startswith("--")):
        assert option in help_text.output, f"`cadre {words[0]}` has no {option}"


def test_the_variables_set_are_the_ones_the_code_reads() -> None:
    names = set(re.findall(r"\b(CADRE_[A-Z_]+)=", DOCKERFILE))
    for _, doc in documents():
        for value in walk(doc):
            if (
                isinstance(value, dict)
                and "name" in value
                and ("value" in value or "valueFrom" in value)
            ):
                names.add(value["name"])
            if isinstance(value, str):
                names |= set(re.findall(r"\b(CADRE_[A-Z_]+)", value))
    cadre = {n for n in names if n.startswith("CADRE_")}
    assert {"CADRE_DATABASE_URL", "CADRE_CATALOG", "CADRE_GRAPHS"} <= cadre
    for name in cadre | {"RAY_ADDRESS", "RAY_AUTH_MODE"} & names:
        if name.startswith("CADRE_") or name == "RAY_ADDRESS":
            assert f'"{name}"' in SOURCES, f"{name} is set in deploy/ but the code never reads it"


def test_image_ray_version_ports_and_resource_agree() -> None:
    images = {
        v["image"]
        for _, doc in documents()
        for v in walk(doc)
        if isinstance(v, dict) and "image" in v
    }
    assert images == {"ghcr.io/cadre-dev/cadre:0.1.0"}
    (cluster,) = [d for _, d in documents() if d.get("kind") == "RayCluster"]
    pinned = re.search(r"ray\[default\]==([\d.]+)", DOCKERFILE)
    assert pinned and cluster["spec"]["rayVersion"] == pinned.group(1)
    import ray

    assert ray.__version__ == pinned.group(1), "the image pins the Ray version tested here"
    exposed = re.search(r"^EXPOSE (\d+)$", DOCKERFILE, flags=re.M)
    assert exposed
    (api,) = [d for _, d in documents() if d.get("kind") == "Deployment"]
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == int(exposed.group(1))
    assert container["args"][container["args"].index("--port") + 1] == exposed.group(1)
    worker = cluster["spec"]["workerGroupSpecs"][0]["rayStartParams"]["resources"]
    launcher = (DEPLOY / "cluster.yaml").read_text()
    assert "cadre_model_host" in worker and '"cadre_model_host": 1' in launcher


def test_the_rayjob_runs_a_shipped_workflow_on_a_shipped_input() -> None:
    (job,) = [d for _, d in documents() if d.get("kind") == "RayJob"]
    args = shlex.split(job["spec"]["entrypoint"])
    assert args[:2] == ["cadre", "run"]
    assert args[2] in load_catalog(ROOT / "agents").workflows
    assert (ROOT / args[args.index("--input") + 1]).is_file()
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == next(
        d["metadata"]["name"] for _, d in documents() if d.get("kind") == "RayCluster"
    )


def test_no_manifest_exposes_ray_without_auth_or_puts_secrets_in_plain_values() -> None:
    """Every Ray process (KubeRay containers, the API's Ray client, the job submitter, the
    launcher's `ray start`s) runs with token auth and takes the token from a secret or a file;
    no manifest turns auth off, and no plain value carries a password."""
    secrets = {d["metadata"]["name"]: d for _, d in documents() if d.get("kind") == "Secret"}
    for path, doc in documents():
        if doc.get("kind") == "Secret":
            continue
        for value in walk(doc):
            if isinstance(value, str):
                assert "RAY_AUTH_MODE=disabled" not in value, path
                assert not re.search(r"://[^/@\s:]+:[^/@\s]+@", value), f"{path}: a password"
            # a Kubernetes container (the launcher's docker block is checked below)
            if not (isinstance(value, dict) and "image" in value and "name" in value):
                continue
            env = {e["name"]: e for e in value.get("env", [])}
            assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", (path, value["name"])
            token = env["RAY_AUTH_TOKEN"]
            assert "value" not in token, f"{path}: the Ray token is written in the manifest"
            ref = token["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets[ref["name"]]["stringData"]
    launcher = yaml.safe_load((DEPLOY / "cluster.yaml").read_text())
    starts = launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"]
    for command in (c for c in starts if "ray start" in c):
        assert command.startswith("RAY_AUTH_MODE=token "), command
    options = " ".join(launcher["docker"]["run_options"])
    token_path = re.search(r"RAY_AUTH_TOKEN_PATH=(\S+)", options)
    assert token_path and token_path.group(1) in launcher["file_mounts"]
    assert "RAY_AUTH_MODE=token" in options  # `cadre serve` on the head is a Ray client too
