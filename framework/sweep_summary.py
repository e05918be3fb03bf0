"""The old path of ``framework.sweeps.summary``, kept until the next release: sweep dirs saved
before the core moved into rooms name ``framework.sweep_summary.SweepSummary`` in
``.hydra/hydra.yaml``."""

from framework.sweeps.summary import SweepSummary  # noqa: F401
