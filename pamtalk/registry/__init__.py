"""The MLflow model registry: register versions, gate and promote them by alias, resolve
what serving should load."""
