"""The config: the core's schema and Hydra store, the ``framework://`` config source, the checks
made before Hydra composes or writes (preflight, a search space, the Optuna sweeper's settings)."""
