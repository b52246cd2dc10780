"""The building blocks of ``hearth``'s argparse tree, shared by :mod:`appliance.cli` and the
``cli_*`` modules that register one command group each (webhooks, grants, analytics, ...).

Every subcommand records ``func`` (what runs it), ``client`` (whether it needs the admin
socket) and ``parser`` (for usage errors) as defaults; see :func:`appliance.cli.main`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-wrapped examples in epilogs as written."""


def common_options() -> argparse.ArgumentParser:
    """The options every command takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help="data directory (env HEARTH_DATA_DIR)")
    common.add_argument("--admin-socket", type=Path,
                        help="admin API socket (default: in the data dir, or /run/hearth)")
    return common


def json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def command(sub: Any, name: str, func: Any, summary: str,
            description: str, examples: str = "", *, client: bool = True,
            parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to the subparsers ``sub``: ``summary`` in the parent's list,
    ``description`` and ``examples`` (indented lines, kept as written) in its ``--help``."""
    p: argparse.ArgumentParser = sub.add_parser(
        name, parents=list(parents), help=summary, description=description,
        epilog=f"examples:\n{examples}" if examples else None, formatter_class=Formatter)
    p.set_defaults(func=func, client=client, parser=p)
    return p


def leaf(sub: Any, common: argparse.ArgumentParser, name: str,
         func: Any, summary: str, description: str,
         examples: str) -> argparse.ArgumentParser:
    """A client command of a group: the common options, ``--json``, and examples."""
    p = command(sub, name, func, summary, description, examples, parents=[common])
    json_flag(p)
    return p
