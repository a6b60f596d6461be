"""Methods: small modules on top of the shared cores. Each supplies arms to the engine."""
