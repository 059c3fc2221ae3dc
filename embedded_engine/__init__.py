"""A ProcessCube-compatible engine (SpiffWorkflow + SQLite + an OAuth authority) for development and tests."""
