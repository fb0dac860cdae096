"""What bench/serving.py prepares before any server starts: the registered ESG champion (trained
into a reused store the first time), a database with an admin key for ours, the request rows
and ONNX Runtime's answer to the check row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench import harness

MODEL = "pamtalk-esg"
FEATURES = 34
ROWS = 256  # distinct request bodies, cycled


@dataclass(frozen=True)
class Setup:
    """What every server is pointed at."""

    store_uri: str  # sqlite:///.../mlflow.db
    database_url: str
    admin_key: str
    onnx_path: Path
    version: str
    token: str  # harness.TOKEN_VARIABLE in every server's environment: finds what they leave
    ray_tmp: Path


@dataclass(frozen=True)
class Rows:
    practices: np.ndarray  # [ROWS, 34] float64 with 3 decimals (short JSON), 0 where not reported
    mask: np.ndarray  # [ROWS, 34] float64, 1 = reported


def random_rows(seed: int) -> Rows:
    rng = np.random.default_rng(seed)
    mask = (rng.random((ROWS, FEATURES)) < 0.85).astype(np.float64)
    practices = np.round(rng.random((ROWS, FEATURES)), 3) * mask
    return Rows(practices, mask)


def reference_scores(onnx_path: Path, rows: Rows) -> np.ndarray:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = {
        name: a[:1].astype(np.float32)
        for name, a in (("practices", rows.practices), ("mask", rows.mask))
    }
    (scores,) = session.run(None, feeds)
    return np.asarray(scores)  # [1, 4, 3]


def ensure_store(store: Path, tiny: bool) -> tuple[str, str, Path]:
    """The store's URI and the ESG champion's version and fp32 ONNX file; trains and promotes
    the default models first if the store has no champions (output to a log)."""
    import mlflow

    from pamtalk.registry import defaults, promote
    from pamtalk.registry import store as registry
    from pamtalk.settings import Settings

    store = store.resolve()
    uri = f"sqlite:///{store}/mlflow.db"
    settings = Settings(mlflow_tracking_uri=uri)
    client = registry.connect(settings)
    if promote.by_alias(client, MODEL, promote.CHAMPION) is None:
        log = harness.RESULTS / "serving-train.log"
        harness.say(f"training the default models into {store} (tiny={tiny}); log: {log}")
        started = time.perf_counter()
        with log.open("w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            defaults.ensure_champions(client, settings, store / "train", tiny=tiny)
        harness.say(f"trained in {time.perf_counter() - started:.0f} s")
    champion = promote.by_alias(client, MODEL, promote.CHAMPION)
    assert champion is not None
    folder = store / "esg-onnx" / str(champion.version)
    if not (folder / "model.onnx").exists():
        mlflow.artifacts.download_artifacts(
            f"models:/{MODEL}/{champion.version}", dst_path=str(folder)
        )
    return uri, str(champion.version), folder / "model.onnx"


def prepare_database(url: str, admin_key: str) -> None:
    """``pamtalk db upgrade`` on a fresh SQLite file, then the admin API key (what ``pamtalk
    init`` does with PAMTALK_ADMIN_API_KEY, without the demo data)."""
    from pamtalk.db import manage
    from pamtalk.settings import Settings

    env = {**os.environ, "PAMTALK_DATABASE_URL": url}
    harness.run_step("pamtalk db upgrade", [str(harness.BIN / "pamtalk"), "db", "upgrade"], env)
    asyncio.run(manage.register_admin_key(Settings(database_url=url, admin_api_key=admin_key)))


def make_setup(args: argparse.Namespace, tmp: Path) -> Setup:
    store_uri, version, onnx_path = ensure_store(args.store, args.tiny)
    database_url = f"sqlite+aiosqlite:///{tmp}/b.db"
    admin_key = harness.random_key()
    if any(name.startswith("ours-") for name in args.only):
        prepare_database(database_url, admin_key)
    (tmp / "r").mkdir()
    return Setup(
        store_uri=store_uri,
        database_url=database_url,
        admin_key=admin_key,
        onnx_path=onnx_path,
        version=version,
        token=secrets.token_hex(8),
        ray_tmp=tmp / "r",  # short: Ray's socket paths must fit in 107 bytes
    )
