"""HTTP API and dashboard for durable (`pip install "durable-pg[server]"`)."""

from durable.http.app import create_app

__all__ = ["create_app"]
