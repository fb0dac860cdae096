"""Register, promote, resolve and roll back through a real `mlflow server` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pamtalk.models.contract import ESG
from pamtalk.registry import promote, publish, store
from pamtalk.settings import Settings
from pamtalk.training import onnx_export
from pamtalk.training.candidate import Candidate
from tests import services
from tests.registry.conftest import TinyEsg, example_inputs


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = services.MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server.url
    server.stop()


def test_promotion_through_a_real_server(mlflow_server: str, tmp_path: Path) -> None:
    settings = Settings(mlflow_tracking_uri=mlflow_server)
    client = store.connect(settings)
    versions = []
    for i, mae in enumerate((1.2, 1.1)):
        path = onnx_export.export(TinyEsg(), example_inputs(), ESG, tmp_path / f"m{i}.onnx")
        candidate = Candidate(
            contract=ESG,
            fp32=path,
            int8=None,
            metrics={"mae_complete": mae},
            params={"i": i},
            example_inputs=example_inputs(),
            fingerprint="server-test",
            table="",
        )
        versions.append(publish.register(client, settings, candidate))

    promote.promote(client, "pamtalk-esg", versions[0])
    promote.promote(client, "pamtalk-esg", versions[1])
    resolved = promote.resolve(client, "pamtalk-esg")
    assert resolved is not None and resolved.version == versions[1]
    assert resolved.fp32.stat().st_size > 0
    assert promote.rollback(client, "pamtalk-esg") == versions[0]
    rows = promote.list_versions(client, "pamtalk-esg")
    assert [r.aliases for r in rows] == [("champion",), ()]
