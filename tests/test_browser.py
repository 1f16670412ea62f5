"""The rendered book as a reader sees it: every page opened in headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) from a local HTTP server over the smoke build of conftest's ``built``
fixture. Pages load with no missing local asset, every figure has a size, glued numbers are in the text, internal
links resolve, and the search page finds the book's words. Screenshots of the main pages go to
``build/screenshots/``."""
from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from conftest import glued

pytestmark = pytest.mark.notebooks

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

#: pages whose screenshots are kept (file stem under build/screenshots/)
MAIN_PAGES = ("book/intro", "build/executed/02_allelic_testing", "build/executed/04_language_model",
              "build/executed/05_baselines", "build/executed/06_attention_motifs", "build/executed/08_reproducibility")


class _Server:
    """A threaded static server over ``root`` that remembers every request answered with an error status."""

    def __init__(self, root: Path):
        errors = self.errors = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def send_error(self, code, message=None, explain=None):
                errors.append((code, unquote(self.path)))
                super().send_error(code, message, explain)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def site(built):
    tmp, _, build = built
    assert build.returncode == 0, build.stderr[-3000:]
    html = tmp / "_build" / "html"
    server = _Server(html)
    yield html, server
    server.close()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver; "
                    ".ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1800"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _pages(html: Path) -> list[str]:
    """The book's pages in table-of-contents order (relative paths without ``.html``), from its toc."""
    import yaml

    toc = yaml.safe_load((html.parents[1] / "book" / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return files


def _open(driver, url: str):
    driver.get(url)
    for _ in range(100):
        if driver.execute_script("return document.readyState") == "complete":
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not finish loading")


def _expected_glue(nb: Path, md_text: str) -> dict[str, str]:
    """For the ``{glue}`` / ``{glue:text}`` references of a page's Markdown, the text the reader should see: the
    glued value's plain text (strings without their quotes; a format spec applied to numbers)."""
    values = glued(nb)
    out = {}
    for role, ref in re.findall(r"\{glue(:text)?\}`([^`]+)`", md_text):
        ref = ref.split("::")[-1]
        key, fmt = (ref.rsplit(":", 1) if role and ":" in ref else (ref, ""))
        if key not in values:
            continue
        v = values[key]
        if fmt == "s":  # the default spec, written out where a cross-page reference needs it
            fmt = ""
        if fmt:
            try:
                v = format(float(v), fmt)
            except ValueError:
                continue
        elif len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        if "\n" not in v and len(v) < 200:
            out[f"{key}:{fmt}" if fmt else key] = v
    return out


def _plain(text: str) -> str:
    """Sphinx's smart quotes undone, so a glued value's quotes match the rendered ones."""
    return text.translate(str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'}))


def _markdown(nb: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "markdown")


def test_every_page_loads_with_its_assets_figures_and_links(site, browser, root):
    html, server = site
    shots = root / "build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    checked_links, problems = 0, []
    for page in _pages(html):
        url = server.url + page + ".html"
        before = len(server.errors)
        _open(browser, url)
        title = browser.title
        if "404" in title or not browser.find_elements("css selector", "main"):
            problems.append(f"{page}: no page (title {title!r})")
            continue
        # figures: every <img> decoded with a non-zero size
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth, "
            "i.naturalHeight])")
        for src, complete, w, h in images:
            if not complete or w == 0 or h == 0:
                problems.append(f"{page}: image {src} has no size ({w} x {h})")
        shown = browser.execute_script("return Array.from(document.querySelectorAll('span.caption-number'))"
                                       ".filter(e => getComputedStyle(e).display != 'none').length")
        if shown:  # the captions name the paper's figures (Figure 9B); a running "Fig. N" would contradict them
            problems.append(f"{page}: {shown} visible Sphinx figure number(s)")
        srcs = [src for src, *_ in images]  # myst-nb names images by content: a repeat is a figure shown twice
        problems += [f"{page}: image {src} shown {srcs.count(src)} times" for src in sorted(set(srcs))
                     if srcs.count(src) > 1]
        # internal links: the target file exists and, for a fragment, holds that id
        for href in browser.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
            parts = urlsplit(href)
            if not href.startswith(server.url) or parts.path.endswith("/search.html"):
                continue
            target = html / unquote(parts.path[1:])
            if target.is_dir():
                target = target / "index.html"
            checked_links += 1
            if not target.is_file():
                problems.append(f"{page}: link to missing {parts.path}")
            elif parts.fragment and target.suffix == ".html" and \
                    f'id="{unquote(parts.fragment)}"' not in target.read_text(errors="replace"):
                problems.append(f"{page}: link to missing anchor {parts.path}#{parts.fragment}")
        # local assets: nothing the page asked the server for was missing
        problems += [f"{page}: {code} for {path}" for code, path in server.errors[before:]
                     if path != "/favicon.ico"]  # asked for by the browser itself, not by the page
        if page in MAIN_PAGES:
            height = browser.execute_script("return document.body.scrollHeight")
            browser.set_window_size(1300, min(max(height, 900), 12000))
            browser.save_screenshot(str(shots / f"{Path(page).name}.png"))
            browser.set_window_size(1300, 1800)
    assert not problems, "\n".join(problems[:30])
    assert checked_links > 50
    for page in MAIN_PAGES:
        png = shots / f"{Path(page).name}.png"
        assert png.stat().st_size > 20_000, f"{png} looks empty"


def test_glued_numbers_appear_in_the_rendered_text(site, browser):
    html, server = site
    executed = html.parents[1] / "build" / "executed"
    checked = 0
    for nb in sorted(executed.glob("[0-9][0-9]_*.ipynb")):
        page = f"build/executed/{nb.stem}"
        expected = _expected_glue(nb, _markdown(nb))
        _open(browser, server.url + page + ".html")
        text = _plain(browser.find_element("css selector", "main").text)
        missing = {k: v for k, v in expected.items() if _plain(v) not in text}
        assert not missing, f"{page}: glued values not in the rendered text: {missing}"
        checked += len(expected)
    # the introduction reaches into the chapters (cross-page glue)
    intro_md = (html.parents[1] / "book" / "intro.md").read_text()
    _open(browser, server.url + "book/intro.html")
    text = _plain(browser.find_element("css selector", "main").text)
    for nb in sorted(executed.glob("[0-9][0-9]_*.ipynb")):
        refs = "\n".join(m for m in re.findall(r"\{glue:text\}`([^`]+)`", intro_md) if nb.name in m)
        expected = _expected_glue(nb, re.sub(r"([^\n]+)", r"{glue:text}`\1`", refs))
        missing = {k: v for k, v in expected.items() if _plain(v) not in text}
        assert not missing, f"intro: values glued from {nb.name} missing: {missing}"
        checked += len(expected)
    assert checked > 40, f"only {checked} glued values checked"


def test_search_finds_the_books_words(site, browser):
    _, server = site
    _open(browser, server.url + "search.html?q=beta-binomial")
    hits = []
    for _ in range(150):  # the search index loads and runs after the page
        hits = browser.find_elements("css selector", "#search-results li, ul.search li")
        if hits:
            break
        time.sleep(0.2)
    assert hits, "the search page returned no results for 'beta-binomial'"
    assert any("allelic" in h.text.lower() or "imbalance" in h.text.lower() or "binomial" in h.text.lower()
               for h in hits)
