"""``python -m tui [--admin-socket PATH]`` (``hearth tui`` runs this with the socket resolved)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tui.app import DashboardApp
from tui.client import UnixSocketAdminClient


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hearth tui",
                                     description="The operator's dashboard.")
    parser.add_argument("--admin-socket", type=Path,
                        default=os.environ.get("HEARTH_ADMIN_SOCKET"),
                        help="admin API socket (hearth tui resolves it from --data-dir)")
    args = parser.parse_args(argv)
    if args.admin_socket is None:
        parser.error("--admin-socket is required (or run `hearth tui`)")
    logging.basicConfig(level=logging.CRITICAL)  # never draw log lines over the TUI
    path = Path(args.admin_socket)
    DashboardApp(UnixSocketAdminClient(path), where=str(path)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
