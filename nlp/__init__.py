"""enrich: language, sentiment, entities, brand matching and purchase intent, EN and DE, offline."""
