"""Two fixes to what every page loads, found by the real-browser test (companion.site.browser).

* sphinx-thebe 0.3.1's inline configuration script (`const THEBE_JS_URL = ...`) reaches every
  page twice (registered once with filename None and once with ""), and the second declaration
  is a SyntaxError in the console. Identical scripts are kept once.
* pydata-sphinx-theme starts a page in the template's `default_mode`, empty unless set, and logs
  "Got invalid theme mode" for an empty one: the book starts in light mode (the figures are
  drawn on white); the reader's switch still works.
"""


def _fix_page(app, pagename, templatename, context, doctree):
    context.setdefault("default_mode", "light")
    seen, unique = set(), []
    for js in context.get("script_files", []):
        attrs = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", str(js)) or "", tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    if "script_files" in context:
        context["script_files"][:] = unique


def setup(app):
    app.connect("html-page-context", _fix_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
