"""Reference-parity tests against Meta's sam2 package (marker ``parity``)."""
