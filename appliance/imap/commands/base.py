"""The common shape of every command object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Command:
    """One parsed command. Subclasses add their arguments as fields."""

    VERB: ClassVar[str] = ""
    tag: bytes

    @property
    def verb(self) -> str:
        return self.VERB

    @classmethod
    def parse(cls, tag: bytes, cursor) -> "Command":
        """Commands without arguments: nothing follows the verb."""
        return cls(tag)
