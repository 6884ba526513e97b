"""The Gymnasium pruning environment (imports no stable_baselines3)."""
