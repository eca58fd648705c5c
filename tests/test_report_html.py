"""report.html as a browser lays it out: from an 800 px window to a wide screen, nothing but a table's own
scroll container is wider than the window, numbers stay on one line, long text keeps a readable width and the
winner is highlighted. Chromium (headless) does the layout; the test fails where it is missing."""

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from lossbench.report.build import build_report
from test_report import BEST, PNG_MAGIC, write_run

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_INSTALL = "sudo apt-get update && sudo apt-get install -y chromium (as root, without sudo), as README.md says"
# a long text cell (advice, evidence) narrower than this wraps a word or two per line
LONG_TEXT_MIN_PX = 200

# Appended to a copy of the report: measures the laid-out page once everything has loaded and leaves the
# numbers in the DOM for --dump-dom.
MEASURE = """<script>
addEventListener("load", () => {
  const root = document.documentElement;
  const lines = element => {
    const range = document.createRange();
    range.selectNodeContents(element);
    return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
  };
  const cell = element => ({
    kind: element.className, tag: element.tagName.toLowerCase(), text: element.textContent,
    width: element.getBoundingClientRect().width, lines: lines(element),
    align: getComputedStyle(element).textAlign, background: getComputedStyle(element).backgroundColor,
  });
  const result = {
    innerWidth, clientWidth: root.clientWidth, scrollWidth: root.scrollWidth,
    tables: [...document.querySelectorAll("table")].map(table => {
      const box = table.parentElement;
      return {
        container: box.className, containerRight: box.getBoundingClientRect().right,
        overflowX: getComputedStyle(box).overflowX, scrollsDown: box.scrollHeight > box.clientHeight,
        rows: [...table.rows].map(row => ({winner: row.classList.contains("winner"), cells: [...row.cells].map(cell)})),
      };
    }),
    images: [...document.images].map(img => ({right: img.getBoundingClientRect().right, loaded: img.complete && img.naturalWidth > 0})),
  };
  const out = document.createElement("pre");
  out.id = "layout";
  out.textContent = JSON.stringify(result);
  document.body.append(out);
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser's path: asked for before the report is built, so that its absence is told at once."""
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    pytest.fail(f"Chromium is needed to check report.html's layout and none of {', '.join(CHROMIUM_NAMES)} is on "
                f"PATH; install it: {CHROMIUM_INSTALL}", pytrace=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    for job, ((loss, seed), best) in enumerate(BEST.items()):
        write_run(root / "sweep" / f"{job}_loss={loss},seed={seed}", loss, seed, best)  # named as a sweep names them
    return build_report([str(root / "sweep")], str(root / "report"))


def layout(chromium: str, report, width: int, profile) -> dict:
    """The page laid out in a window ``width`` px wide."""
    page = report.out_dir / f"layout_{width}.html"  # beside report.html, so that what it links resolves alike
    page.write_text((report.out_dir / "report.html").read_text().replace("</body>", MEASURE + "</body>"))
    try:
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", f"--window-size={width},2000", "--virtual-time-budget=10000",
             "--run-all-compositor-stages-before-draw", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        page.unlink()
    found = re.search(r'<pre id="layout">(.*?)</pre>', done.stdout, re.S)
    assert found, f"Chromium did not lay the page out (exit code {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def laid_out(chromium, report, tmp_path_factory):
    """width -> the page laid out at that width, each once."""
    pages, profile = {}, tmp_path_factory.mktemp("chromium")

    def at(width):
        if width not in pages:
            pages[width] = layout(chromium, report, width, profile)
        return pages[width]
    return at


@pytest.mark.slow  # builds a whole report, figures included, and starts a browser
@pytest.mark.parametrize("width", [800, 1400])
def test_the_page_fits_the_window(laid_out, width):
    page = laid_out(width)
    assert page["innerWidth"] == width
    # what is wider than the window scrolls inside its table's container, never the page
    assert page["scrollWidth"] <= page["clientWidth"]
    assert len(page["tables"]) == 3  # comparison, paired differences, diagnosis
    for table in page["tables"]:
        assert table["container"] == "table-scroll" and table["overflowX"] == "auto"
        assert table["containerRight"] <= page["clientWidth"] and not table["scrollsDown"]
    # figures further down load as they are scrolled to
    assert page["images"][0]["loaded"] and all(image["right"] <= page["clientWidth"] for image in page["images"])
    cells = [cell for table in page["tables"] for row in table["rows"] for cell in row["cells"]]
    numbers = [cell for cell in cells if cell["kind"] == "num" and cell["tag"] == "td"]
    assert any(" ± " in cell["text"] for cell in numbers)
    for cell in numbers:
        assert cell["lines"] == 1 and cell["align"] == "right", cell
    texts = [cell for cell in cells if {"text", "long"} & set(cell["kind"].split())]
    assert {cell["text"] for cell in texts} >= {"loss", "verdict", "advice", "evidence", "focal"}
    for cell in texts:  # headers included
        assert cell["align"] in ("left", "start"), cell
    long = [cell for cell in cells if "long" in cell["kind"].split()]
    assert {cell["text"] for cell in long} >= {"advice", "evidence"}
    for cell in long:
        assert cell["width"] >= LONG_TEXT_MIN_PX, cell


@pytest.mark.slow  # builds a whole report, figures included, and starts a browser
def test_the_winner_is_highlighted(laid_out):
    comparison, paired, diagnosis = laid_out(1400)["tables"]

    def highlighted(table):
        body = table["rows"][1:]
        plain = {cell["background"] for row in body if not row["winner"] for cell in row["cells"]}
        marked = [row for row in body if row["winner"]]
        # a highlight that shows: a background no other row has
        assert all(cell["background"] not in plain for row in marked for cell in row["cells"])
        return [[cell["text"] for cell in row["cells"]] for row in marked]

    (winner,) = highlighted(comparison)
    assert winner[:2] == ["1", "focal"]
    (better,) = highlighted(paired)
    assert better[0] == "focal" and "better than the baseline" in better
    assert highlighted(diagnosis) == []


class _Structure(HTMLParser):
    def __init__(self):
        super().__init__()
        self.meta, self.ids, self.toc_links, self.images, self._in_nav = [], set(), [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta":
            self.meta.append(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "nav":
            self._in_nav = True
        if tag == "a" and self._in_nav:
            self.toc_links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs)

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_nav = False


@pytest.mark.slow  # builds a whole report, figures included
def test_viewport_and_contents(report):
    page = _Structure()
    page.feed((report.out_dir / "report.html").read_text())
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in page.meta
    sections = [link for link in page.toc_links if not link.startswith("#figure-")]
    assert sections == ["#comparison", "#against-loss-ce", "#diagnosis", "#runs"]
    assert len(page.toc_links) == len(sections) + len(BEST)  # and each run's figure
    for link in page.toc_links:
        assert link[1:] in page.ids
    # the figures are the PNGs beside the page, not copies inside it: it stays small however many runs there are
    assert {image["src"] for image in page.images} == {path.name for path in report.images.values()}
    for image in page.images:
        assert (report.out_dir / image["src"]).read_bytes()[:8] == PNG_MAGIC
        assert image["loading"] == "lazy" and int(image["width"]) > 0 and int(image["height"]) > 0
    assert (report.out_dir / "report.html").stat().st_size < 50_000
