"""Tools that run from a checkout, not installed with the package: the smoke run, the cluster check, the CPU backend
that runs verl's real trainer without a GPU, and the demo."""
