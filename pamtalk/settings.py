"""All configuration, read once from the environment (prefix ``PAMTALK_``) and passed down.

Defaults are the embedded single-box mode: SQLite, an in-process cache, a local MLflow store.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/pamtalk.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAMTALK_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "prod"] = "dev"
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=10, ge=1)
    redis_url: str | None = None
    mlflow_tracking_uri: str = "sqlite:///./var/mlflow.db"
    serving_backend: Literal["local", "ray"] = "local"
    celery_broker_url: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    admin_api_key: str | None = None

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

    @model_validator(mode="after")
    def _refuse_unsafe_prod(self) -> Settings:
        if self.env == "prod" and self.admin_api_key is not None and len(self.admin_api_key) < 32:
            raise ValueError("PAMTALK_ADMIN_API_KEY must be at least 32 characters in prod")
        return self
