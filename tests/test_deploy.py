"""The deployment manifests parse, and the alert rules watch metrics the service exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import pamtalk.api.app
import pamtalk.serving.metrics  # noqa: F401
from tests.deploy.manifests import OVERLAYS, rendered

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")


def test_manifests_parse() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 5
    for path in files:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert documents, path


def test_alert_rules_use_exported_metrics() -> None:
    exported = {f"{m.name}{s}" for m in REGISTRY.collect() for s in SUFFIXES}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())
    used = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= set(re.findall(r"([a-z_]+)(?=\{|\[)", rule["expr"]))
    assert used and used <= exported, used - exported


# Deploy hardening (issue 11, finding 9): parsed from the manifests as each Kustomize overlay
# renders them (tests/deploy/manifests.py), not from a live cluster.
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|_PASS$", re.IGNORECASE)
CREDENTIALS_IN_URL = re.compile(r"://[^/@\s]*:[^/@\s]+@")
PINNED = re.compile(r":v?\d+\.\d+[\w.-]*$")  # at least major.minor; never latest
APP = {"app.kubernetes.io/part-of": "pamtalk"}
API = {"app": "pamtalk-api", **APP}
RAY_HEAD = {"app.kubernetes.io/part-of": "pamtalk-ray", "ray.io/node-type": "head"}
RAY_WORKER = {"app.kubernetes.io/part-of": "pamtalk-ray", "ray.io/node-type": "worker"}


def k8s_documents(overlay: str | None = None) -> list[dict[str, Any]]:
    """One overlay's documents, or every overlay's; each carries its overlay's name."""
    return [
        {**doc, "overlay": name}
        for name in ([overlay] if overlay else OVERLAYS)
        for doc in rendered(name)
    ]


def ray_cluster(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The Ray cluster spec of a RayCluster or a RayService; None for other kinds."""
    if doc["kind"] == "RayCluster":
        return dict(doc["spec"])
    if doc["kind"] == "RayService":
        return dict(doc["spec"]["rayClusterConfig"])
    return None


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """Every pod template in the manifests, named by its overlay and workload."""
    specs = []
    for doc in k8s_documents():
        name = f"{doc['overlay']}/{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            specs.append((name, doc["spec"]["template"]["spec"]))
        elif (cluster := ray_cluster(doc)) is not None:
            specs.append((f"{name}/head", cluster["headGroupSpec"]["template"]["spec"]))
            for group in cluster["workerGroupSpecs"]:
                specs.append((f"{name}/{group['groupName']}", group["template"]["spec"]))
    return specs


def containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, container, its pod spec) for every container, the Ray autoscaler's included."""
    found = [
        (f"{name}/{c['name']}", c, spec)
        for name, spec in pod_specs()
        for c in spec.get("containers", []) + spec.get("initContainers", [])
    ]
    for doc in k8s_documents():
        cluster = ray_cluster(doc)
        if cluster is not None and cluster.get("enableInTreeAutoscaling"):
            where = f"{doc['overlay']}/{doc['kind']}/{doc['metadata']['name']}/autoscaler"
            found.append((where, cluster.get("autoscalerOptions", {}), {}))
    return found


def test_every_container_is_limited_and_unprivileged() -> None:
    found = containers()
    assert len(found) >= 6
    for where, container, pod in found:
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), (where, kind)
        context = container.get("securityContext", {})
        pod_context = pod.get("securityContext", {})
        assert context.get("allowPrivilegeEscalation") is False, where
        assert context.get("readOnlyRootFilesystem") is True, where
        assert "ALL" in context.get("capabilities", {}).get("drop", []), where
        assert True in (context.get("runAsNonRoot"), pod_context.get("runAsNonRoot")), where
        seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
        assert seccomp.get("type") == "RuntimeDefault", where
        if pod:  # a read-only root: what the process writes goes to an emptyDir
            scratch = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get("/tmp") in scratch, where


def images() -> list[tuple[str, str]]:
    found = [(where, c["image"]) for where, c, _ in containers() if "image" in c]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    found += [(f"compose/{n}", s["image"]) for n, s in compose["services"].items()]
    for dockerfile in sorted(DEPLOY.glob("Dockerfile*")):
        text = dockerfile.read_text()
        stages = set(re.findall(r"^FROM \S+ AS (\S+)", text, re.M))
        for base, copied in re.findall(r"^FROM (\S+)|^COPY --from=(\S+)", text, re.M):
            if (image := base or copied) not in stages:  # an image, not an earlier stage
                found.append((dockerfile.name, image))
    return found


def test_images_are_pinned() -> None:
    found = images()
    assert len(found) >= 12
    for where, image in found:
        assert PINNED.search(image) and not image.endswith(":latest"), (where, image)


def test_credentials_come_from_secrets() -> None:
    for where, container, _ in containers():
        for env in container.get("env", []):
            literal = str(env.get("value", ""))
            if SECRETISH.search(env["name"]) or CREDENTIALS_IN_URL.search(literal):
                assert "valueFrom" in env and "value" not in env, (where, env["name"])
        for source in container.get("envFrom", []):
            assert "secretRef" in source, where  # no credentials in a ConfigMap
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRETISH.search(key) or CREDENTIALS_IN_URL.search(str(value)):
                # every secret is a ${NAME:?...} reference: no literal, no default
                references = re.findall(r"\$\{(\w+)(:\?|:-|-|\})", str(value))
                assert references and all(how == ":?" for _, how in references), (name, key)
                assert not re.sub(r"\$\{[^}]*\}", "", str(value)).count(":pamtalk@"), (name, key)


def test_compose_secrets_are_what_make_deploy_secrets_generates() -> None:
    compose = (DEPLOY / "compose.yaml").read_text()
    referenced = set(re.findall(r"\$\{(\w+):\?", compose))
    makefile = (DEPLOY.parent / "Makefile").read_text()
    generated = set(re.search(r"^DEPLOY_SECRETS := (.+)$", makefile, re.M)[1].split())  # type: ignore[index]
    assert referenced == generated
    assert "deploy/.env" in (DEPLOY.parent / ".gitignore").read_text().split()
    redis = yaml.safe_load(compose)["services"]["redis"]
    assert "--requirepass" in " ".join(redis["command"])


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, container port) for each published port; no address is 0.0.0.0."""
    found = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        host = parts[0] if len(parts) == 3 else "0.0.0.0"
        found.append((host, parts[-1]))
    return found


def test_compose_publishes_only_the_api() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services, networks = compose["services"], compose["networks"]
    assert published(services["api"]) == [("0.0.0.0", "8000")]
    for name in sorted(set(services) - {"api"}):  # Prometheus, Grafana, Flower included
        for host, port in published(services[name]):
            assert host == "127.0.0.1", (name, port)  # the host's loopback at most
    # The data services share networks with the app containers (and each other) only, MLflow
    # with the app containers only, and those networks reach nothing outside. Flower, which
    # reads the broker, counts as an app container here (and is published on loopback only).
    apps, data = {"api", "worker", "beat", "flower"}, {"postgres", "redis", "rabbitmq"}
    for name, neighbours in [(n, apps | data) for n in data] + [("mlflow", apps)]:
        for network in services[name]["networks"]:
            assert networks[network].get("internal") is True, (name, network)
            members = {n for n, s in services.items() if network in s.get("networks", [])}
            assert members - {name} <= neighbours, (name, network, members)


def network_policies(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in k8s_documents(overlay) if doc["kind"] == "NetworkPolicy"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match: dict[str, str] = selector.get("matchLabels", {})
    return match.items() <= labels.items()


def peers(overlay: str, labels: dict[str, str], port: int) -> list[dict[str, Any] | str]:
    """Who may open ``port`` on pods with ``labels``: each rule's peers, "anyone" for a rule
    without a from clause."""
    found: list[dict[str, Any] | str] = []
    for policy in network_policies(overlay):
        spec = policy["spec"]
        if "Ingress" not in spec["policyTypes"] or not selects(spec["podSelector"], labels):
            continue
        for rule in spec.get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if not ports or port in ports:
                found += rule.get("from") or ["anyone"]
    return found


def operator(name: str) -> dict[str, Any]:
    """A cluster operator's pods (their Helm chart's label), in any namespace."""
    return {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_open_only_the_named_flows(overlay: str) -> None:
    deny = [p for p in network_policies(overlay) if p["spec"]["podSelector"] == {}]
    assert any(
        set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in deny
    )
    ray = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "pamtalk-ray"}}}
    api = {"podSelector": {"matchLabels": {"app": "pamtalk-api"}}}
    kuberay = operator("kuberay-operator")  # submits serveConfigV2 on the dashboard
    for port, sources in ((10001, (api, ray)), (8265, (api, ray, kuberay))):
        # Ray job submission: the API, Ray's own pods, and on the dashboard KubeRay
        assert peers(overlay, RAY_HEAD, port)
        assert all(p in sources for p in peers(overlay, RAY_HEAD, port))
        assert api in peers(overlay, RAY_HEAD, port)
        assert all(p == ray for p in peers(overlay, RAY_WORKER, port))
    app = {"podSelector": {"matchLabels": APP}}
    for name, port in (("postgresql", 5432), ("redis", 6379)):
        allowed = peers(overlay, {"app.kubernetes.io/name": name}, port)
        assert allowed == [app], (name, allowed)
    # RabbitMQ: the app, and KEDA, which reads the queues' lengths to scale the workers
    allowed = peers(overlay, {"app.kubernetes.io/name": "rabbitmq"}, 5672)
    assert allowed == [app, operator("keda-operator")], allowed
    assert app in peers(overlay, {"app.kubernetes.io/name": "mlflow"}, 5000)
    assert "anyone" not in peers(overlay, {"app.kubernetes.io/name": "mlflow"}, 5000)
    assert peers(overlay, API, 9100) == [operator("prometheus")]  # /metrics: Prometheus only
    assert peers(overlay, API, 8000) == ["anyone"]  # the public API


def test_nothing_is_exposed_outside_the_cluster_but_through_the_api() -> None:
    for doc in k8s_documents():
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", doc["metadata"]
        if (cluster := ray_cluster(doc)) is not None:
            assert cluster["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
        assert doc["kind"] != "Ingress" or "ray" not in str(doc).lower()


def test_metrics_are_scraped_on_their_own_port() -> None:
    api = next(c for where, c, _ in containers() if "/Deployment/pamtalk-api/" in where)
    port = next(e["value"] for e in api["env"] if e["name"] == "PAMTALK_METRICS_PORT")
    template = next(
        d["spec"]["template"]
        for d in k8s_documents()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "pamtalk-api"
    )
    assert template["metadata"]["annotations"]["prometheus.io/port"] == port
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    compose_port = compose["services"]["api"]["environment"]["PAMTALK_METRICS_PORT"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"api:{compose_port}"]


def test_the_image_runs_as_an_unprivileged_user() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    user = re.findall(r"^USER (\d+)", final_stage, re.M)
    assert user and int(user[-1]) >= 1000
    assert "build-essential" not in final_stage  # no compiler in what runs
