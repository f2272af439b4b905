"""The ticket domain: intake, status and lifecycle, routing, deadlines, enrichment, the national link."""
