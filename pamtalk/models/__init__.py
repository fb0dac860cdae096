"""The two models, on plain data (numpy / pandas): demand forecasting and ESG scoring.

Nothing here imports ``pamtalk.api``; callers (CLI, API, batch jobs) adapt their data.
"""
