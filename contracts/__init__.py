"""The national 12315 data standard as the gateway speaks it: models, code tables and identifiers."""
