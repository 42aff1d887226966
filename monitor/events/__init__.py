"""The events explorer: list, filter and search individual events; one event with everything known about it."""
