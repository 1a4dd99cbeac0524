"""Files: the model format (safetensors + JSON), data files, built-in data sets and
atomic writes."""
