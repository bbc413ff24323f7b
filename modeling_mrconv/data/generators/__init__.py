"""Seeded generators of the LRA ListOps and Pathfinder/Path-X data (also runnable as CLIs)."""
