"""Where a run executes: the Keras backend, the devices a worker is given, the dtype policy and
distribution, the order epochs serve their data in."""
