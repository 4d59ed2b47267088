"""CLI commands: (to be written)."""


def register(sub) -> None:  # noqa: ARG001
    pass
