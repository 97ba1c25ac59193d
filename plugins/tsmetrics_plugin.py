"""Airflow UI plugin: the tsmetrics prevalence overview, at /tsmetrics, in the Browse menu."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from tsmetrics.ui import create_app


class TsmetricsPlugin(AirflowPlugin):
    name = "tsmetrics"
    fastapi_apps = [
        {"app": create_app(), "url_prefix": "/tsmetrics", "name": "tsmetrics prevalence"}
    ]
    external_views = [
        {
            "name": "Prevalence",
            "href": "/tsmetrics/",
            "destination": "nav",
            "category": "browse",
            "url_route": "tsmetrics",
        }
    ]
