"""Patch 6: the arch timer's active-state cache."""
