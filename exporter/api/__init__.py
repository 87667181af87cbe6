"""The sidecar's HTTP API: route table, errors, request validation, one module per resource."""
