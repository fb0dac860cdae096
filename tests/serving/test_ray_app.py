"""The RayService's application builder (pamtalk.serving.ray_app) builds the application
the API would deploy for that version: the same deployment, spec and model bytes. Ray is
imported inside the tests (importing ray.serve warns; only the marks may ignore that)."""

from __future__ import annotations

import onnx
import pytest
from mlflow import MlflowClient

from pamtalk.registry import promote
from pamtalk.settings import Settings

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
    app = ray_app.build({"model": "pamtalk-demand", "version": version}, serving_settings)
    deployment = app._bound_deployment
    assert deployment.name == REPLICA
    spec, model = deployment.init_args
    assert isinstance(spec, ReplicaSpec)
    assert (spec.name, spec.version, spec.precision) == ("pamtalk-demand", version, "fp32")
    assert spec.max_batch_rows == serving_settings.serving_max_batch_size
    assert onnx.load_from_string(model).graph.input  # a whole model, weights inside


def test_an_unknown_version_is_refused(serving_settings: Settings) -> None:
    from pamtalk.serving import ray_app

    with pytest.raises(Exception, match="999"):
        ray_app.build({"model": "pamtalk-demand", "version": "999"}, serving_settings)
