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


class ScriptActive(StoreError):
    """The active Sieve script cannot be deleted (RFC 5804 §2.10); deactivate it first."""


class StorageFull(StoreError):
    """The disk holding the store is full (SQLite's SQLITE_FULL); the write was rolled back.

    Temporary by nature: the same call succeeds once space is freed.
    """
