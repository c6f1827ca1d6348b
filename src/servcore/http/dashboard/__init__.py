"""The web dashboard at ``/dashboard``: static pages that talk to the JSON API."""

from servcore.http.dashboard.routes import dashboard_routes

__all__ = ["dashboard_routes"]
