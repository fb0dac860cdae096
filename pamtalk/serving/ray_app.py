"""The Serve application builder that deploy/k8s's RayService names in its serveConfigV2:

    applications:
      - name: pamtalk-demand-v6                 # what the API calls version 6's application
        import_path: pamtalk.serving.ray_app:build
        args: {model: pamtalk-demand, version: "6"}

It builds the same application the API's RayBackend deploys for that version (the same
deployment, replica spec and model bytes), so an API process pointed at the cluster finds it
RUNNING and shares it instead of deploying its own. KubeRay keeps the declared versions up
through cluster upgrades; canaries and newer versions the API deploys beside them. Settings
come from the Ray pods' environment (PAMTALK_MLFLOW_TRACKING_URI, PAMTALK_SERVING_*);
scaling from serveConfigV2's ``deployments`` section (autoscaling_config, ray_actor_options).
"""

from __future__ import annotations

from typing import Any

from pamtalk.registry import store
from pamtalk.serving.ray_backend import REPLICAS, ReplicaSpec, _self_contained
from pamtalk.serving.service import fetch
from pamtalk.settings import Settings


def build(args: dict[str, str]) -> Any:
    """Serve's entry point (a builder takes exactly the config's ``args``): the application
    for ``args['model']`` version ``args['version']``, with settings from the environment."""
    return application(args["model"], str(args["version"]), Settings())


def application(model: str, version: str, settings: Settings) -> Any:
    """The Serve ``Application`` for ``model`` ``version`` (typed Any, as Ray's are)."""
    artifact = fetch(store.connect(settings), settings, model, version)
    return REPLICAS.bind(ReplicaSpec.of(artifact, settings), _self_contained(artifact.path))
