"""All configuration, read once from the environment (prefix ``PAMTALK_``) and passed down.

Defaults are the embedded single-box mode: SQLite, an in-process cache, a local MLflow store.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/pamtalk.db"
# Stands in for PAMTALK_SECRET_KEY outside prod. It is in the source, so it protects nothing.
_DEV_SECRET = "pamtalk-development-secret-not-for-production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAMTALK_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "prod"] = "dev"
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=10, ge=1)
    # Seconds a request waits for a pooled PostgreSQL connection before a 503: a short wait
    # sheds load instead of piling requests up behind an exhausted pool.
    database_pool_timeout_s: float = Field(default=2.0, gt=0)
    # Requests in flight per worker before a fast 503 (health, readiness, metrics exempt).
    # Little's law on docs/benchmarks.md's spike run (~220 req/s per worker at saturation):
    # 64 in flight is ~0.3 s of queue, about our p99 target; more only adds waiting.
    max_in_flight: int = Field(default=64, ge=1)
    redis_url: str | None = None
    mlflow_tracking_uri: str = "sqlite:///./var/mlflow.db"
    serving_backend: Literal["local", "ray"] = "local"
    celery_broker_url: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    admin_api_key: str | None = None
    # Signs opaque tokens (cursors) and encrypts secrets kept at rest (webhook secrets). Prod
    # refuses to start without one; elsewhere a fixed, public development key stands in.
    secret_key: SecretStr | None = None

    # Serving (pamtalk/serving): the dynamic batcher, per model version
    serving_max_batch_size: int = Field(default=64, ge=1)
    serving_max_wait_ms: float = Field(default=2.0, ge=0)
    serving_max_queue_rows: int = Field(default=4096, ge=1)
    serving_parallelism: int = Field(default=2, ge=1)  # batches in flight per version
    serving_timeout_s: float = Field(default=5.0, gt=0)  # per request, queue + compute
    serving_threads: int = Field(default=1, ge=0)  # ONNX Runtime intra-op threads; 0 = all
    serving_precision: Literal["fp32", "int8"] = "fp32"
    serving_warmup_batches: list[int] = [1, 8, 64]
    model_watch_interval: float = Field(default=30.0, ge=0)  # seconds; 0 = never re-check
    # Progressive rollouts: every API worker judges running rollouts this often (0 = never)
    # and adds its per-version serving figures to the database this often.
    rollout_tick_s: float = Field(default=5.0, ge=0)
    serving_counters_flush_s: float = Field(default=2.0, gt=0)

    # Ray Serve backend (RAY_ADDRESS picks an existing cluster; unset starts a local one)
    ray_min_replicas: int = Field(default=1, ge=0)
    ray_max_replicas: int = Field(default=2, ge=1)
    ray_target_ongoing_requests: float = Field(default=4, gt=0)
    ray_max_ongoing_requests: int = Field(default=16, ge=1)
    ray_max_queued_requests: int = Field(default=64, ge=1)
    ray_num_cpus: float = Field(default=0.5, ge=0)
    ray_num_gpus: float = Field(default=0.0, ge=0)  # fractions share a GPU between replicas

    # Batch scoring (pamtalk/batching)
    batch_demand_chunk: int = Field(default=64, ge=1)  # series per chunk
    batch_esg_chunk: int = Field(default=512, ge=1)  # farms per chunk
    batch_max_batch_size: int = Field(default=2048, ge=1)  # rows per model call in workers
    batch_max_queue_rows: int = Field(default=32_768, ge=1)  # rows waiting per version
    batch_timeout_s: float = Field(default=600.0, gt=0)  # per model call, queue + compute
    batch_chunk_retries: int = Field(default=3, ge=0)
    # Redis redelivers an unacknowledged task after this many seconds (RabbitMQ: at once
    # when the worker's connection drops). Longer than the slowest chunk.
    celery_visibility_timeout: int = Field(default=3600, ge=1)

    # Ledger (pamtalk/ledger): seal a Merkle anchor every N entries or M minutes
    ledger_anchor_every: int = Field(default=100, ge=1)
    ledger_anchor_minutes: float = Field(default=10.0, gt=0)

    # Notifications (pamtalk/notify): webhook URLs on private or loopback addresses are refused
    # unless this is set (dev, tests).
    webhook_allow_private: bool = False

    # HTTP
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    log_level: str = "INFO"

    # Cache TTLs in seconds (the seed's).
    farm_list_ttl: int = 300
    dashboard_ttl: int = 60
    session_ttl: int = 1800
    prediction_ttl: int = 3600
    api_key_ttl: int = 300

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def signing_key(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose, derived from PAMTALK_SECRET_KEY, so that a key
        leaked from one use (say, cursors) signs nothing else."""
        secret = self.secret_key.get_secret_value() if self.secret_key else _DEV_SECRET
        root = hashlib.sha256(secret.encode()).digest()
        return hashlib.blake2b(purpose.encode(), key=root, digest_size=32).digest()

    @model_validator(mode="after")
    def _refuse_unsafe_prod(self) -> Settings:
        if self.env == "prod" and self.admin_api_key is not None and len(self.admin_api_key) < 32:
            raise ValueError("PAMTALK_ADMIN_API_KEY must be at least 32 characters in prod")
        return self
