"""All configuration, read once from the environment (prefix ``PAMTALK_``) and passed down.

Defaults are the embedded single-box mode: SQLite, an in-process cache, a local MLflow store.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
from collections import Counter
from typing import Annotated, Literal

import limits
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/pamtalk.db"
# Stands in for PAMTALK_SECRET_KEY outside prod. It is in the source, so it protects nothing.
_DEV_SECRET = "pamtalk-development-secret-not-for-production"

# Prod mode: secrets must be long and look random. The estimate is the string's length times
# the Shannon entropy of its own character frequencies, so 32 x "a" scores 0 bits and a key
# of two alternating characters 32; ``openssl rand -hex 32`` scores about 245.
MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS = 100.0
_GENERATE = "generate one with `openssl rand -hex 32`"


def estimated_entropy_bits(secret: str) -> float:
    """Length x the Shannon entropy per character of ``secret``'s own character counts: a
    cheap upper-bound guess that catches repeated and few-symbol keys (not dictionary words)."""
    n = len(secret)
    return n * math.log2(n) - sum(c * math.log2(c) for c in Counter(secret).values()) if n else 0.0


def _weak_secret(name: str, secret: str) -> str | None:
    bits = estimated_entropy_bits(secret)
    if len(secret) >= MIN_SECRET_LENGTH and bits >= MIN_SECRET_BITS:
        return None
    return (
        f"{name} must be at least {MIN_SECRET_LENGTH} characters in prod and look random "
        f"(it has {len(secret)} characters, an estimated {bits:.0f} bits of entropy; "
        f"{MIN_SECRET_BITS:.0f} needed): {_GENERATE}"
    )


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting's error must not print (part of) a secret.
    model_config = SettingsConfigDict(
        env_prefix="PAMTALK_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    env: Literal["dev", "test", "prod"] = "dev"
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=10, ge=1)
    # Seconds a request waits for a pooled PostgreSQL connection before a 503: a short wait
    # sheds load instead of piling requests up behind an exhausted pool.
    database_pool_timeout_s: float = Field(default=2.0, gt=0)
    # PostgreSQL: seconds to open a connection, and to wait for any one statement's answer.
    # Without them a partitioned network holds a request (and its pooled connection) for as
    # long as TCP keeps trying, minutes; with them it is a retriable 503.
    database_connect_timeout_s: float = Field(default=5.0, gt=0)
    database_command_timeout_s: float = Field(default=15.0, gt=0)
    # Requests in flight per worker before a fast 503 (health, readiness, metrics exempt).
    # Little's law on docs/benchmarks.md's spike run (~220 req/s per worker at saturation):
    # 64 in flight is ~0.3 s of queue, about our p99 target; more only adds waiting.
    max_in_flight: int = Field(default=64, ge=1)
    redis_url: str | None = None
    # Connections per Redis pool and worker (the cache, the security store and the rate
    # limits each have one). Calls take well under a millisecond, so a few serve the
    # worker's whole in-flight cap; past the bound a call waits up to 0.5 s, then counts as
    # a cache miss.
    redis_max_connections: int = Field(default=16, ge=1)
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
    # int8: a version's static int8 file where it passed its gate, on the CPU; fp32 otherwise.
    # Batch jobs serve at this precision too, so the nightly numbers are the API's.
    serving_precision: Literal["fp32", "int8"] = "int8"
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

    # Batch workers through a database outage (pamtalk/batching/tasks.py): a chunk that finds
    # the database unreachable (a restart, a failover) waits up to this long for it, spending
    # none of its retries; its message stays unacknowledged meanwhile, so keep this shorter
    # than celery_visibility_timeout.
    batch_database_wait_s: float = Field(default=600.0, gt=0)

    # Jobs started from the API (/v1/jobs; docs/security.md): one open job per user, kind
    # and target (a second is a 409 naming the first), at most this many a user starts in
    # any 24 hours (then a 429), and at most this many jobs run at once in an API process
    # without a broker (the others wait their turn, pending).
    jobs_per_user_per_day: int = Field(default=20, ge=1)
    jobs_max_running: int = Field(default=2, ge=1)

    # Ledger (pamtalk/ledger): seal a Merkle anchor every N entries or M minutes
    ledger_anchor_every: int = Field(default=100, ge=1)
    ledger_anchor_minutes: float = Field(default=10.0, gt=0)

    # Notifications (pamtalk/notify): webhook URLs on private or loopback addresses are refused
    # unless this is set (dev, tests).
    webhook_allow_private: bool = False

    # Key rotation for secrets kept at rest (webhook secrets, README "Receiving a webhook"):
    # what was encrypted under the previous PAMTALK_SECRET_KEY stays readable while this is
    # set to it; new secrets use the current key.
    secret_key_previous: SecretStr | None = None

    # Prod mode and metrics (docs/security.md): with PAMTALK_METRICS_PORT set, `pamtalk serve`
    # serves /metrics on that port only, never on the API's; prod never serves it, or /docs
    # and /openapi.json, on the API port.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # HTTP
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    log_level: str = "INFO"

    # Cache TTLs in seconds (the seed's).
    farm_list_ttl: int = 300
    dashboard_ttl: int = 60
    session_ttl: int = 1800
    prediction_ttl: int = 3600
    api_key_ttl: int = 300

    # Guessing, floods and sessions (docs/security.md, "Login, sign-up and rate limits" and
    # "Sessions and API keys"). Rate limits are in the notation of the `limits` library
    # ("30/minute", "100 per 2 seconds"), counted over a sliding window: "100 per 2 seconds"
    # averages 50/s and allows a burst of 100.
    # Peers whose X-Forwarded-For is believed (IPs or CIDRs, comma-separated); none by default,
    # so a client cannot pick its own address for the per-address limits.
    trusted_proxies: Annotated[list[str], NoDecode] = []
    login_max_failures_per_account: int = Field(default=10, ge=1)
    login_max_failures_per_address: int = Field(default=100, ge=1)
    login_lockout_s: int = Field(default=900, ge=1)  # the window both failure counts live in
    # Argon2id runs at most this many at once per worker (each takes 64 MiB and up to 4
    # threads for ~0.1 s); a login or sign-up that cannot start one within the wait is a fast
    # 503. Default: half the cores, so that a burst of logins leaves the rest to other work.
    password_hash_concurrency: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), ge=1
    )
    password_hash_wait_s: float = Field(default=0.25, ge=0)
    rate_limits_enabled: bool = True
    rate_limit_auth: str = "30/minute"  # login and sign-up, per client address
    rate_limit_principal: str = "100 per 2 seconds"  # authenticated requests, per user
    rate_limit_predictions: str = "40 per 2 seconds"  # predictions, ESG, OIP infer, per user
    # Sessions end 30 minutes after their last use (session_ttl) and this long after login.
    session_max_age_s: int = Field(default=43_200, ge=60)
    # Sessions, login counters and rate-limit counters live apart from cached responses, so
    # that no amount of cached pages evicts them: in-process a store of their own (this many
    # entries), with Redis this URL (default PAMTALK_REDIS_URL; it needs
    # maxmemory-policy noeviction, see docs/security.md).
    security_redis_url: str | None = None
    security_store_max_entries: int = Field(default=200_000, ge=1000)

    # Operations (docs/operations.md): with a broker, every API worker asks it this often for
    # the length of each Celery queue (celery_task_queue_length; 0 = never).
    queue_metrics_interval_s: float = Field(default=15.0, ge=0)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value

    @field_validator("rate_limit_auth", "rate_limit_principal", "rate_limit_predictions")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        limits.parse(value)  # ValueError: not in the limits notation
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def metrics_on_api_port(self) -> bool:
        return self.metrics_port is None and self.env != "prod"

    @property
    def serves_docs(self) -> bool:
        return self.env != "prod"

    def signing_key(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose, derived from PAMTALK_SECRET_KEY, so that a key
        leaked from one use (say, cursors) signs nothing else."""
        secret = self.secret_key.get_secret_value() if self.secret_key else _DEV_SECRET
        root = hashlib.sha256(secret.encode()).digest()
        return hashlib.blake2b(purpose.encode(), key=root, digest_size=32).digest()

    def signing_keys(self, purpose: str) -> list[bytes]:
        """The purpose's key, then its key under PAMTALK_SECRET_KEY_PREVIOUS if that is set:
        to read what was encrypted before the secret key changed."""
        keys = [self.signing_key(purpose)]
        if self.secret_key_previous is not None:
            previous = self.model_copy(update={"secret_key": self.secret_key_previous})
            keys.append(previous.signing_key(purpose))
        return keys

    @model_validator(mode="after")
    def _refuse_unsafe_prod(self) -> Settings:
        """Prod refuses a guessable bootstrap key and a missing or guessable signing secret,
        all problems in one message (docs/security.md, "Prod mode")."""
        if self.env != "prod":
            return self
        problems = []
        if self.admin_api_key is not None:
            problems.append(_weak_secret("PAMTALK_ADMIN_API_KEY", self.admin_api_key))
        if self.secret_key is None:
            problems.append(
                "PAMTALK_SECRET_KEY is required in prod (it signs cursors and encrypts webhook "
                f"secrets): {_GENERATE}"
            )
        elif self.secret_key.get_secret_value() == _DEV_SECRET:
            problems.append(f"PAMTALK_SECRET_KEY is the public development key: {_GENERATE}")
        else:
            problems.append(_weak_secret("PAMTALK_SECRET_KEY", self.secret_key.get_secret_value()))
        if refused := [p for p in problems if p]:
            raise ValueError("PAMTALK_ENV=prod refuses to start: " + "; ".join(refused))
        return self
