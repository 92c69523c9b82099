"""Model families and loading: which classes a task loads, Meta checkpoint conversion, and the one adapter over transformers' private internals."""
