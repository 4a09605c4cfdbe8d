"""The engine's HTTP API: routes (decode, call the domain, encode), auth, metrics, OpenAPI."""
