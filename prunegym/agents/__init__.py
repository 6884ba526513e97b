"""Agents and searchers that play the pruning environment."""
