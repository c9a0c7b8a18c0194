import contextlib
import functools
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


@functools.cache
def recorded_elsewhere(golden: Path) -> bool:
    """Whether a golden was recorded on a machine that rounds differently from this one (asked
    once per golden and session: by the report header and by its collector)."""
    from companion import device
    recorded = json.loads(golden.read_text())["metadata"]["companion"].get("recorded_on")
    return recorded != device.machine_fingerprint()


def pytest_report_header(config):
    goldens = sorted((ROOT / "tests" / "goldens").glob("*.ipynb"))
    elsewhere = [g.stem for g in goldens if recorded_elsewhere(g)]
    if not elsewhere:
        return "nbval goldens: recorded on this machine; every output is compared"
    return (f"nbval goldens recorded on another machine ({', '.join(elsewhere)}): their outputs are compared by "
            "kind and count, not by value; `make golden` records them here")


def pytest_collectstart(collector):
    if not (getattr(collector, "fspath", None) and collector.fspath.ext == ".ipynb"):
        return
    # nbval: progress bars and kernel warnings go to stderr; they are not results
    collector.skip_compare += ("stderr",)
    # A smoke run's numbers depend on the CPU's rounding: on another CPU, float32 sums taken in
    # another order change a trained model's loss from the third digit on. Only a golden recorded
    # on this machine can be compared value for value; elsewhere each cell must still run and give
    # the same kinds and number of outputs (nbval applies these patterns first, then the file's).
    if recorded_elsewhere(Path(str(collector.fspath))):
        collector.sanitize_patterns[r"(?s)\A.+\Z"] = "VALUE"


@pytest.fixture(scope="session")
def data_dir():
    d = os.environ.get("COMPANION_DATA")
    if not d or not (Path(d) / "tinyshakespeare.txt").exists():
        pytest.skip("COMPANION_DATA does not point at the offline data sets (see ../shared/data/README.md)")
    return Path(d)


@pytest.fixture(scope="session")
def chromium():
    """The system's Chromium for the browser tests: skipped where there is none, except in CI
    (.ci/run installs Debian's chromium), where a missing browser is a failure."""
    from companion.site import browser
    try:
        return browser.find_chromium()
    except browser.BrowserMissing as e:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test needs Chromium in CI: {e}")
        pytest.skip(str(e))


@contextlib.contextmanager
def isolated_run(tmp_path_factory):
    """A private result cache and one torch thread for an experiment run inside the tests."""
    import torch
    old = os.environ.get("COMPANION_CACHE")
    os.environ["COMPANION_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if old is None:
            os.environ.pop("COMPANION_CACHE")
        else:
            os.environ["COMPANION_CACHE"] = old
