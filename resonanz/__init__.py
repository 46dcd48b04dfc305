"""Resonanz: social-media listening and influencer detection on Prefect and DuckDB."""

__version__ = "0.1.0"
