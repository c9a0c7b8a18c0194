"""Regenerate the nbval goldens: every chapter executed at smoke scale (`make golden`)."""
import sys
from pathlib import Path

import nbformat

from companion import chapters, cli, device
from companion.results import repo_root


def main(ids):
    for cid in ids or chapters.CHAPTERS:
        ch = chapters.get(cid)
        cfg = chapters.configure(ch, "smoke", {})
        nb = cli.execute(ch, "smoke", cfg, {}, {}, repo_root() / "_build" / "golden" / cid)
        dest = Path(__file__).parent / "goldens" / f"{cid}.ipynb"
        golden = nbformat.read(nb, as_version=4)
        golden.metadata.companion.recorded_on = device.machine_fingerprint()  # see conftest.py
        nbformat.write(golden, dest)
        print(f"wrote {dest}")


if __name__ == "__main__":
    main(sys.argv[1:])
