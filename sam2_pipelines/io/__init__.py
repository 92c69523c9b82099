"""Input and output: video decoding and writing, overlays, results as JSON."""
