"""What a reader's browser shows: every page of the built book opened in a real headless Chromium.

The HTML folder is served on 127.0.0.1 and every request to any other address is refused, so
the check also proves the book works offline. Each page is opened at a desktop width and at a
phone width, and fails on:

* a JavaScript error (an uncaught exception or a console error, e.g. a resource that does not load);
* a request that leaves 127.0.0.1 (a CDN the page depends on);
* an image that is not decoded, or (desktop) shown below 80% of its natural width without a
  link that opens it at full size;
* (desktop) a table wider than its column: a claims table or the dashboard's verdict column
  cut off or scrolled sideways; (both) a page wider than the window;
* an equation left as TeX source (no MathJax output, or a raw ``\\(`` in the text);
* a link to a file that is not in the build, or to an anchor that is not on its page;
* "NaN", "Traceback" or "TqdmWarning" in the text, or the build machine's path in the HTML.

A screenshot of every page at every width is kept (`screens`) for a person to look at.
Chromium is the system's (Debian's `chromium`), driven by Playwright; `find_chromium` says where.
"""
import functools
import http.server
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

WIDTHS = {"desktop": 1280, "phone": 390}
HEIGHT = {"desktop": 900, "phone": 844}
MIN_SHOWN = 0.8  # of an image's natural width, at the desktop width, unless it links to itself
FORBIDDEN = re.compile(r"\bNaN\b|Traceback|TqdmWarning")
SKIP_DIRS = ("_static", "_sources", "_images", "_downloads")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserMissing(RuntimeError):
    """No Chromium to drive; the message says how to install one."""


def find_chromium() -> str:
    """The Chromium binary: $COMPANION_CHROMIUM, else the first of CANDIDATES on PATH."""
    env = os.environ.get("COMPANION_CHROMIUM")
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise BrowserMissing(f"COMPANION_CHROMIUM={env} is not an executable file")
        return env
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing("no Chromium found (looked for " + ", ".join(CANDIDATES) + "): install Debian's "
                         "`chromium` (apt-get install chromium) or set COMPANION_CHROMIUM to the browser")


@dataclass
class Report:
    pages: int = 0
    problems: list = field(default_factory=list)  # "page [width]: what is wrong"
    seconds: dict = field(default_factory=dict)  # page -> seconds, all widths together
    screens: list = field(default_factory=list)


def html_pages(root: Path) -> list:
    """Every HTML page of a build, as paths relative to its root (assets folders left out)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                  if not p.relative_to(root).parts[0] in SKIP_DIRS)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@dataclass
class Server:
    """The build served on 127.0.0.1 (a free port) for as long as the `with` block lasts."""
    root: Path
    url: str = ""

    def __enter__(self):
        handler = functools.partial(_Quiet, directory=str(self.root))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


# Runs in the page once it has loaded: waits for MathJax and the images, then measures.
_MEASURE = """async (minShown) => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const article = document.querySelector(".bd-article") || document.body;
  const vw = document.documentElement.clientWidth;
  const images = imgs.map(i => ({src: i.getAttribute("src"), natural: i.naturalWidth,
    shown: i.getBoundingClientRect().width, visible: i.offsetParent !== null,
    link: (i.closest("a") && i.closest("a").href) || "", full: i.src}));
  const tables = Array.from(article.querySelectorAll("table")).filter(t => t.offsetParent !== null).map(t => {
    let box = t.parentElement, clipped = false;
    for (let e = t.parentElement; e && e !== article.parentElement; e = e.parentElement) {
      if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible") { clipped = true; }
    }
    const r = t.getBoundingClientRect(), a = article.getBoundingClientRect();
    const head = t.querySelector("tr") ? t.querySelector("tr").innerText.replace(/\\s+/g, " ").slice(0, 60) : "";
    return {head, clipped, right: r.right, limit: Math.min(vw, a.right + 1)};
  });
  const math = Array.from(document.querySelectorAll(".math")).filter(m => !m.closest("pre"));
  const raw = math.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.slice(0, 40));
  const clone = article.cloneNode(true);
  clone.querySelectorAll("pre, code, script, style, mjx-container, .math").forEach(e => e.remove());
  const prose = clone.textContent;
  const ids = Array.from(document.querySelectorAll("[id], a[name]")).map(e => e.id || e.getAttribute("name"));
  const links = Array.from(document.querySelectorAll("a[href]")).map(a => a.href);
  return {images, tables, math: math.length, raw, rawTex: /\\\\\\(|\\\\\\[/.test(prose),
          text: document.body.innerText, html: document.documentElement.outerHTML, ids, links,
          pageWidth: document.documentElement.scrollWidth, vw};
}"""


def redirect(path: Path):
    """The target of a page that only redirects (`<meta http-equiv="Refresh">`), else None."""
    text = path.read_text(errors="replace")
    m = re.fullmatch(r'\s*<meta http-equiv="Refresh" content="0; url=([^"]+)"\s*/?>\s*', text, re.I)
    return m.group(1) if m else None


def _check_page(m: dict, where: str, width: str, forbidden_paths) -> list:
    """Problems of one page at one width, from what _MEASURE returned."""
    out = []
    for img in m["images"]:
        if not img["visible"]:
            continue
        if img["natural"] == 0:
            out.append(f"{where} [{width}]: image {img['src']} is not decoded (missing or broken file)")
        elif (width == "desktop" and img["shown"] < MIN_SHOWN * img["natural"]
              and urldefrag(img["link"])[0] != img["full"]):
            out.append(f"{where} [{width}]: image {img['src']} is shown at {img['shown']:.0f} of its "
                       f"{img['natural']} px and does not open at full size on click")
    if width == "desktop":
        for t in m["tables"]:
            if t["clipped"] or t["right"] > t["limit"]:
                out.append(f"{where} [{width}]: table '{t['head']}' is wider than its column "
                           "(cut off or scrolled sideways)")
    if m["pageWidth"] > m["vw"] + 1:
        out.append(f"{where} [{width}]: the page is {m['pageWidth']} px wide in a {m['vw']} px window")
    if m["raw"]:
        out.append(f"{where} [{width}]: {len(m['raw'])} of {m['math']} equations not typeset "
                   f"(first: {m['raw'][0]!r})")
    if m["rawTex"]:
        out.append(f"{where} [{width}]: raw TeX delimiters \\( or \\[ in the text")
    for hit in sorted(set(FORBIDDEN.findall(m["text"]))):
        out.append(f"{where} [{width}]: the text shows {hit!r}")
    for p in forbidden_paths:
        if p and p in m["html"]:
            out.append(f"{where} [{width}]: the page contains the build machine's path {p}")
    return out


def _check_links(root: Path, base: str, links: dict, ids: dict) -> list:
    """Every same-site link resolves to a file of the build, and its anchor to an id there."""
    out = []
    for page, hrefs in links.items():
        for href in sorted(set(hrefs)):
            if not href.startswith(base):
                continue  # another site: not ours to check offline
            target, anchor = urldefrag(href)
            rel = unquote(urlsplit(target).path)[len(urlsplit(base).path):]
            path = root / rel
            if path.is_dir():
                path, rel = path / "index.html", (rel.rstrip("/") + "/index.html").lstrip("/")
            if not path.is_file():
                out.append(f"{page}: link to {rel or '/'} which is not in the build")
            elif anchor and rel.endswith(".html") and rel in ids and unquote(anchor) not in ids[rel]:
                out.append(f"{page}: link to {rel}#{anchor}, an anchor that is not on that page")
    return out


def _only_local(base: str, blocked: list):
    """A route handler: requests to the served book go through, any other is refused and noted."""
    def route(r):
        if r.request.url.startswith((base, "data:")):
            return r.continue_()
        blocked.append(r.request.url)
        return r.abort()
    return route


def check_site(root, screens=None, widths=WIDTHS, forbidden_paths=(), only=None) -> Report:
    """Open every page of the HTML build `root` (or the pages `only` lists) in headless Chromium
    at each width; see the module docstring for what counts as a problem. Screenshots go to
    `screens` when given."""
    from playwright.sync_api import sync_playwright

    root = Path(root).resolve()
    report = Report()
    pages = [p for p in html_pages(root) if not only or p in only]
    report.pages = len(pages)
    if screens:
        screens = Path(screens)
        screens.mkdir(parents=True, exist_ok=True)
    links, ids = {}, {}
    with Server(root) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
        try:
            for width, px in widths.items():
                context = browser.new_context(viewport={"width": px, "height": HEIGHT.get(width, 900)})
                blocked = []
                context.route("**/*", _only_local(server.url, blocked))
                for rel in pages:
                    t0 = time.time()
                    target = redirect(root / rel)
                    if target is not None:  # the book's index.html: only its target is checked
                        links[rel], ids[rel] = [server.url + str(Path(rel).parent / target)], set()
                        continue
                    page = context.new_page()
                    errors = []
                    page.on("console", lambda msg, e=errors: e.append(msg.text) if msg.type == "error" else None)
                    page.on("pageerror", lambda exc, e=errors: e.append(f"uncaught {exc}"))
                    blocked.clear()
                    page.goto(server.url + rel, wait_until="load")
                    m = page.evaluate(_MEASURE, MIN_SHOWN)
                    report.problems += [f"{rel} [{width}]: JavaScript error: {e}" for e in errors]
                    report.problems += [f"{rel} [{width}]: request to {u} (the network is not the book's)"
                                        for u in sorted(set(blocked))]
                    report.problems += _check_page(m, rel, width, [str(root), *forbidden_paths])
                    if width == next(iter(widths)):
                        links[rel], ids[rel] = m["links"], set(m["ids"])
                    if screens:
                        shot = screens / f"{rel[:-5].replace('/', '__')}-{px}.png"
                        page.screenshot(path=str(shot), full_page=True)
                        report.screens.append(shot)
                    page.close()
                    report.seconds[rel] = report.seconds.get(rel, 0.0) + time.time() - t0
                context.close()
        finally:
            browser.close()
    report.problems += _check_links(root, server.url, links, ids)
    return report
