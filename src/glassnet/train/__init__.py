"""Training: optimizers, callbacks, the fit loop, metrics and checkpoints."""
