"""Many runs: a sweep's summary, plot and resume, and a keras-tuner search."""
