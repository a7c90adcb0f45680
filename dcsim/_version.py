"""dcsim's version, in a leaf module: whatever records it imports it from here, not from the
package root."""

__version__ = "0.1.0"  # keep equal to pyproject.toml's `version` (tests/test_repo.py)
