"""ProcessCube Task Gateway."""
