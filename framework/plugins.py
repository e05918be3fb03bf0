"""``python -m framework.plugins`` lists every registered part; ``python -m framework.plugins
GROUP`` the parts of one group (``backbone``...); ``python -m framework.plugins NAME`` shows one
part's settings with their types, defaults and comments.
"""

import argparse

from framework.cli.messages import one_line_usage, report_errors
from framework.parts.loading import find_parts, load_plugins, plugin_listing
from framework.parts.registry import REGISTRIES
from framework.parts.settings import describe_part


def main(argv=None):
    parser = one_line_usage(
        argparse.ArgumentParser(
            prog="python -m framework.plugins",
            description="Without arguments: every registered part, with the plugin that provides "
            "it. With a GROUP (backbone, head...): that group's parts. With a NAME (and optionally "
            "its GROUP first): that part's settings, with their types, defaults and comments.",
        )
    )
    parser.add_argument("words", nargs="*", metavar="[GROUP] NAME")
    args = parser.parse_args(argv)
    if len(args.words) > 2:
        parser.error("give at most a group and a name")
    with report_errors():
        load_plugins()
        if not args.words:
            print(plugin_listing())
            return
        if len(args.words) == 1 and args.words[0] in REGISTRIES:  # a group: its parts
            print(plugin_listing([args.words[0]]))
            return
        name, group = args.words[-1], (args.words[0] if len(args.words) == 2 else None)
        print("\n\n".join(describe_part(part) for part in find_parts(name, group)))


if __name__ == "__main__":
    from framework.cli.process_exit import run_and_exit

    run_and_exit(main)
