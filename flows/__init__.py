"""Prefect flows: thin wiring of the rooms' functions into tasks."""
