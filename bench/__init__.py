"""The benchmark harness (``python -m bench``): raw engine vs the real service under load."""
