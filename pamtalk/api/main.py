"""The ASGI entry point for uvicorn: ``pamtalk.api.main:app`` (settings from the environment)."""

from pamtalk import logs
from pamtalk.api.app import create_app
from pamtalk.settings import Settings

_settings = Settings()
logs.configure(_settings.log_level)
app = create_app(_settings)
