"""The data layer's error type."""


class DataError(ValueError):
    """Missing or malformed data; the message names the file (or dataset) and the problem."""
