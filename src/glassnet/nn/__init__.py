"""The math: parameters, layers, losses and initializers. Nothing here knows about
training loops, files or the command line."""
