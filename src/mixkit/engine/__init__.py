"""The training engine: one loop for every arm of every method, and the timing core."""
