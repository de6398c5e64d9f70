"""Build-time tools: the CRD and the API reference, generated from the models."""
