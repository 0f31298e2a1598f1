"""A tiny Django app whose model the Django integration tests save."""
