"""Command groups of the ``onecard`` CLI: each module defines ``register(subparsers)``."""
