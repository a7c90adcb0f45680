"""Scenarios shipped inside the package (the default quickstart)."""
