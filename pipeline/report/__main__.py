"""python -m pipeline.report: recompute published summaries, re-render the README and docs pages.

python -m pipeline.report --recompute docs/results/pendulum docs/results/cartpole   summaries from per-seed metrics
python -m pipeline.report --pages                     every results block and value of README.md and docs/
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.console import OneLineParser
from pipeline.report.pages import refresh_pages
from pipeline.report.summary import recompute


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(
        prog="python -m pipeline.report",
        description="Recompute results summaries from their per-seed metrics, and re-render the pages that quote them.",
    )
    parser.add_argument("--recompute", type=Path, nargs="+", default=[], help="results folders (docs/results/<x>)")
    parser.add_argument("--pages", action="store_true", help="re-render README.md and docs/**/*.md in place")
    parser.add_argument("--root", type=Path, default=Path("."), help="the checkout whose pages are rendered")
    args = parser.parse_args(argv)
    if not args.recompute and not args.pages:
        parser.error("give --recompute FOLDER ... and/or --pages")
    for folder in args.recompute:
        recompute(folder)
    if args.pages:
        for path in refresh_pages(args.root):
            print(f"re-rendered {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
