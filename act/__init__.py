"""act: reports for marketing and alerts for brand teams, read from the warehouse."""
