"""medmat: Med-MAT as code (registry, builder, planner, export)."""

__version__ = "0.1.0"
