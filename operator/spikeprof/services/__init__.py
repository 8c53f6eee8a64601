"""Use cases that combine core decisions with adapters (e.g. running one capture)."""
