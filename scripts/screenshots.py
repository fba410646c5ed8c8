"""Screenshots of report.html pages in headless Chromium (the README's and docs' pictures).

    python scripts/screenshots.py results/demo/report.html docs/report.png
    python scripts/screenshots.py --full results/quick/report.html docs/report-matrix.png

``make screenshots`` runs the demo and the quick matrix and refreshes every picture.
Chromium comes from the system (``apt-get install -y chromium``), driven through PyPI's
playwright; never ``playwright install``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def shoot(page_path: Path, out: Path, *, width: int = 1180, height: int = 1400,
          full: bool = False, section: str | None = None) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height},
                                    device_scale_factor=1)
            page.goto(page_path.resolve().as_uri())
            out.parent.mkdir(parents=True, exist_ok=True)
            if section:
                page.locator(f"section#{section}").screenshot(path=str(out))
            else:
                page.screenshot(path=str(out), full_page=full)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="a report.html")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--full", action="store_true", help="the whole page, not one screen")
    parser.add_argument("--section", help="only this section (overview, over-time, ...)")
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args(argv)
    if not args.page.is_file():
        print(f"screenshots: {args.page} does not exist (run make demo first)", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"screenshots: {CHROMIUM} is missing: apt-get install -y chromium",
              file=sys.stderr)
        return 2
    shoot(args.page, args.out, full=args.full, section=args.section, height=args.height)
    print(f"screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
