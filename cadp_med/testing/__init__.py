"""Test helpers shipped with cadp-med (synthetic PHI corpora)."""
