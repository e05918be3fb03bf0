"""What a command does around the work: one-line errors, --help, the process's exit on a signal,
and the run guard Hydra calls before it writes anything."""
