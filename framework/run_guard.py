"""The old path of ``framework.cli.run_guard``, kept until the next release: run dirs saved before
the core moved into rooms name ``framework.run_guard.RunGuard`` in ``.hydra/hydra.yaml``."""

from framework.cli.run_guard import RunGuard  # noqa: F401
