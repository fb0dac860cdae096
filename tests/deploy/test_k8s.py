"""The Kubernetes manifests, rendered per overlay, are valid for the cluster and say what
docs/operations.md says: built-in kinds against Kubernetes' own schemas (kubernetes-validate),
the RayService and KEDA's kinds against the CRD schemas in deploy/k8s/schemas, the Serve
config against Ray's own schema; and the scaling they promise."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pamtalk.models.contract import CONTRACTS
from pamtalk.queues import QUEUES
from tests.deploy.manifests import K8S, OVERLAYS, find, rendered

KUBERNETES = "1.32.0"  # the oldest minor version the manifests must work on
CRDS = {  # (apiVersion, kind) -> its schema, kept with its source (schemas/README.md)
    ("ray.io/v1", "RayService"): "rayservice-ray.io-v1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda.sh-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication-keda.sh-v1alpha1.json",
}


def closed(schema: Any) -> Any:
    """The schema with unknown fields refused: the API server prunes a field its structural
    schema does not name, so a misspelt one would vanish silently instead of failing."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(file: str) -> jsonschema.protocols.Validator:
    schema = closed(json.loads((K8S / "schemas" / file).read_text()))
    return jsonschema.Draft7Validator(schema)


def validate(doc: dict[str, Any]) -> None:
    crd = CRDS.get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in crd_validator(crd).iter_errors(doc)
        ]
        assert not errors, errors
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_document_is_valid(overlay: str) -> None:
    docs = rendered(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"RayService", "ScaledObject", "HorizontalPodAutoscaler"} <= kinds
    assert "RayCluster" not in kinds  # KubeRay makes the cluster from the RayService
    for doc in docs:
        try:
            validate(doc)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        assert doc["metadata"]["namespace"] == f"pamtalk{'-dev' if overlay == 'dev' else ''}"


def test_the_validation_catches_mistakes() -> None:
    docs = rendered("prod")
    service = find(docs, "RayService", "pamtalk-ray")
    service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 4  # misspelt
    with pytest.raises(AssertionError, match="maxReplica"):
        validate(service)
    scaled = find(docs, "ScaledObject", "pamtalk-worker")
    del scaled["spec"]["scaleTargetRef"]
    with pytest.raises(AssertionError, match="scaleTargetRef"):
        validate(scaled)
    api = find(docs, "Deployment", "pamtalk-api")
    api["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(api)


def test_schemas_name_their_source() -> None:
    readme = (K8S / "schemas" / "README.md").read_text()
    for file in CRDS.values():
        assert file in readme
    assert "ray-project/kuberay" in readme and "kedacore/keda" in readme


def test_the_api_scales_on_cpu_and_memory_and_keeps_pods_through_disruptions() -> None:
    docs = rendered("prod")
    hpa = find(docs, "HorizontalPodAutoscaler", "pamtalk-api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 50)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    deployment = find(docs, "Deployment", "pamtalk-api")
    assert hpa["scaleTargetRef"]["name"] == "pamtalk-api"
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    pdb = find(docs, "PodDisruptionBudget", "pamtalk-api")["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_scale_on_every_queue_and_beat_runs_once(overlay: str) -> None:
    docs = rendered(overlay)
    scaled = find(docs, "ScaledObject", "pamtalk-worker")["spec"]
    worker = find(docs, "Deployment", scaled["scaleTargetRef"]["name"])
    assert "replicas" not in worker["spec"]
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"][:2] == [
        "pamtalk",
        "worker",
    ]
    queues = [t["metadata"]["queueName"] for t in scaled["triggers"] if t["type"] == "rabbitmq"]
    assert sorted(queues) == sorted(QUEUES)
    for trigger in scaled["triggers"]:
        assert trigger["metadata"]["mode"] == "QueueLength"
        auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert auth["spec"]["secretTargetRef"] == [
            {"parameter": "host", "name": "pamtalk", "key": "PAMTALK_CELERY_BROKER_URL"}
        ]
    assert 1 <= scaled["minReplicaCount"] < scaled["maxReplicaCount"]
    beat = find(docs, "Deployment", "pamtalk-beat")["spec"]
    assert beat["replicas"] == 1 and beat["strategy"] == {"type": "Recreate"}


def api_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    api = find(docs, "Deployment", "pamtalk-api")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in api["env"] if "value" in e}


@pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field`")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpu_serving_autoscales_replicas_and_gpu_workers(overlay: str) -> None:
    from ray.serve.schema import ServeDeploySchema

    from pamtalk.serving.ray_backend import REPLICA, app_name

    docs = rendered(overlay)
    service = find(docs, "RayService", "pamtalk-ray")["spec"]
    config = ServeDeploySchema.model_validate(yaml.safe_load(service["serveConfigV2"]))
    env = api_env(docs)
    assert env["PAMTALK_SERVING_BACKEND"] == "ray"
    assert env["RAY_ADDRESS"] == "ray://pamtalk-ray-head-svc:10001"  # the RayService's head
    assert {a.args["model"] for a in config.applications} == set(CONTRACTS)
    for app in config.applications:
        # the application the API would deploy for that version, which it then shares
        assert app.import_path == "pamtalk.serving.ray_app:build"
        assert app.name == app_name(app.args["model"], app.args["version"])
        (deployment,) = app.deployments
        assert deployment.name == REPLICA
        scaling = deployment.autoscaling_config
        assert scaling == {
            "min_replicas": int(env["PAMTALK_RAY_MIN_REPLICAS"]),
            "max_replicas": int(env["PAMTALK_RAY_MAX_REPLICAS"]),
            "target_ongoing_requests": float(env["PAMTALK_RAY_TARGET_ONGOING_REQUESTS"]),
        }
        assert deployment.ray_actor_options.num_gpus == float(env["PAMTALK_RAY_NUM_GPUS"])
    cluster = service["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    (gpu,) = cluster["workerGroupSpecs"]
    assert 1 <= gpu["minReplicas"] <= gpu["maxReplicas"]
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    assert cluster["rayVersion"] == __import__("ray").__version__


def test_overlays_differ_only_in_scale_and_namespace() -> None:
    dev, prod = ({(d["kind"], d["metadata"]["name"]) for d in rendered(o)} for o in ("dev", "prod"))
    assert dev == prod
    assert (
        find(rendered("dev"), "HorizontalPodAutoscaler", "pamtalk-api")["spec"]["maxReplicas"] < 50
    )


def test_the_base_is_not_deployed_alone() -> None:
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert "namespace" not in base  # overlays choose it
    assert sorted(base["resources"]) == sorted(
        p.name for p in (K8S / "base").glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert all(Path(K8S / "overlays" / o / "kustomization.yaml").exists() for o in OVERLAYS)
