"""The FastAPI front: farms, transactions, dashboard, auth."""
