"""Search for the FHIR store: parse, plan, compile (see docs/search.md)."""
