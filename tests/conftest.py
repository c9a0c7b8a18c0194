import contextlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def pytest_collectstart(collector):
    # nbval: progress bars and kernel warnings go to stderr; they are not results
    if getattr(collector, "fspath", None) and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)


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
