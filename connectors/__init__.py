"""collect: one module per source; each turns API pages into typed records with a cursor."""
