"""Protocol conformance tooling and tests (GraphQL over HTTP)."""
