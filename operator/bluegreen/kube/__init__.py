"""The one door to the API server: its client and its typed errors."""
