"""rank: the interaction graph and explained influence scores."""
