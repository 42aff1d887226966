"""The end-to-end demo: a simulated support app, its traffic, and the loop closing on it."""
