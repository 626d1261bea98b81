"""``python -m clipdash.store.migrate DB [DB ...]``: upgrade results databases to the current schema.

Each database is upgraded under the writer's lock (``ResultWriter`` calls ``migrations.upgrade``); the
original is kept as ``<name>.v<old>.bak``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from clipdash.errors import ClipdashError
from clipdash.store.db import SCHEMA_VERSION
from clipdash.store.writer import ResultWriter


def main(argv: list[str] | None = None) -> int:
    """Upgrade each database named; 0 when all are current afterwards, 2 on an error (one line)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        prog="python -m clipdash.store.migrate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("db", type=Path, nargs="+", help="results database(s) to bring to the current schema")
    args = parser.parse_args(argv)
    for db in args.db:
        if not db.is_file():
            print(f"error: results database not found: {db}", file=sys.stderr)
            return 2
        try:
            with ResultWriter(db) as writer:
                migrated = writer.migrated_from
        except ClipdashError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(
            f"{db}: schema version {SCHEMA_VERSION} already"
            if migrated is None
            else f"{db}: migrated from schema version {migrated} to {SCHEMA_VERSION}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
