"""Small helpers shared by every package (no torch, gymnasium or SB3 imports)."""
