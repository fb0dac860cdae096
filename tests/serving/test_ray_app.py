"""The RayService's application builder (pamtalk.serving.ray_app) builds the application
the API would deploy for that version: the same deployment, spec and model bytes. Ray is
imported inside the tests (importing ray.serve warns; only the marks may ignore that)."""

from __future__ import annotations

import onnx
import pytest
from mlflow import MlflowClient

from pamtalk.registry import promote
from pamtalk.settings import Settings
from tests.serving.conftest import local_ray

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field`"),
]


def test_builds_the_version_the_api_would_deploy(
    serving_settings: Settings, registry: MlflowClient
) -> None:
    from pamtalk.serving import ray_app
    from pamtalk.serving.ray_backend import REPLICA, ReplicaSpec

    champion = promote.by_alias(registry, "pamtalk-demand", "champion")
    assert champion is not None
    version = str(champion.version)
    app = ray_app.application("pamtalk-demand", version, serving_settings)
    deployment = app._bound_deployment
    assert deployment.name == REPLICA
    spec, model = deployment.init_args
    assert isinstance(spec, ReplicaSpec)
    assert (spec.name, spec.version, spec.precision) == ("pamtalk-demand", version, "int8")
    assert spec.max_batch_rows == serving_settings.serving_max_batch_size
    assert onnx.load_from_string(model).graph.input  # a whole model, weights inside


def test_an_unknown_version_is_refused(serving_settings: Settings) -> None:
    from pamtalk.serving import ray_app

    with pytest.raises(Exception, match="999"):
        ray_app.application("pamtalk-demand", "999", serving_settings)


async def test_the_rayservice_config_runs_and_the_api_shares_its_version(
    serving_settings: Settings, registry_uri: str
) -> None:
    """The RayService's serveConfigV2 (the dev overlay's, rendered), applied as KubeRay
    applies it, on a local Ray: the demand version comes up RUNNING, answers, and the API's
    Ray backend shares it instead of deploying its own. Scaled down for a 2-core box: no GPU,
    a quarter CPU, one replica, no HTTP proxy."""
    import yaml
    from ray import serve
    from ray.serve._private.api import serve_start
    from ray.serve.schema import ServeDeploySchema

    from pamtalk.models.contract import DEMAND
    from pamtalk.registry import store
    from pamtalk.serving.ray_backend import RayBackend, app_name
    from pamtalk.serving.service import fetch
    from tests.deploy.manifests import find, rendered
    from tests.serving.conftest import example

    service = find(rendered("dev"), "RayService", "pamtalk-ray")
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    (app,) = [a for a in config["applications"] if a["args"]["model"] == DEMAND.registered_name]
    (deployment,) = app["deployments"]
    deployment["autoscaling_config"] = {"min_replicas": 1, "max_replicas": 1}
    deployment["ray_actor_options"] = {"num_cpus": 0.25, "num_gpus": 0}
    env = {"PAMTALK_MLFLOW_TRACKING_URI": registry_uri, "PAMTALK_DEVICE": "cpu"}
    app["runtime_env"] = {"env_vars": env}
    declared = ServeDeploySchema.model_validate(
        {"proxy_location": "Disabled", "applications": [app]}
    )
    with local_ray():
        serve_start(proxy_location="Disabled").deploy_apps(declared, _blocking=True)
        name = app_name(DEMAND.registered_name, app["args"]["version"])
        assert serve.status().applications[name].status == "RUNNING"

        settings = serving_settings.model_copy(update={"serving_backend": "ray"})
        artifact = fetch(
            store.connect(settings), settings, DEMAND.registered_name, app["args"]["version"]
        )
        handle, owned = RayBackend(settings)._run(artifact, name)
        assert owned is False  # found running: shared, not redeployed
        outputs = await handle.remote(example(DEMAND, rows=3))
        assert outputs[0].shape[0] == 3
