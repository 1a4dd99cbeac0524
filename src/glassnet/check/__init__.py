"""Gradient checking: numerical gradients, verdicts and the diagnosis of a failure."""
