"""A base for tfvae's plain-Python parts that Keras serialises (objectives, schedules)."""

from __future__ import annotations

__all__ = ["Serialisable"]


class Serialisable:
    """``get_config``/``from_config`` as Keras expects, with equality and repr from the config.

    Subclasses define ``get_config`` (a dict of JSON-able values or serialised
    Keras objects) whose keys are their constructor's arguments.
    """

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self), repr(self)))

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"
