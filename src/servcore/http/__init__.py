"""The HTTP JSON API: a mountable ASGI app built from plain handler functions."""

from servcore.http.app import create_app, job_routes

__all__ = ["create_app", "job_routes"]
