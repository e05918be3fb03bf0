"""``python -m framework_plugins.shapes``: writes a generated shapes dataset as
train/validation/test class folders. The command keeps this path; the code is in
``framework_plugins.datasets.shapes``."""

import sys

from framework.api import UserError
from framework_plugins.datasets.shapes import main

if __name__ == "__main__":
    try:
        main()
    except UserError as e:  # one line and exit code 2, as the framework's commands do
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
