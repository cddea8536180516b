"""What store operations raise. Each carries a message fit to show a user as is."""


class StoreError(Exception):
    """Base class: a refused operation; nothing was changed."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class InvalidName(StoreError):
    pass


class QuotaExceeded(StoreError):
    pass
