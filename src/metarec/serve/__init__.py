"""The recommendation service: a FastAPI app over an SQL event store and an online,
per-user adapted recommender (``metarec serve RUN_DIR``)."""

from metarec.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
