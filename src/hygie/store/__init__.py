"""The FHIR R4 health-data store: repository, search, REST API."""
