"""The explorer: one offline web page for the zoo, each network and each trained run.

    import convzoo.explore
    site = convzoo.explore.build_site(["resnet18", "runs/lenet5-digits"], out="site")   # none: every network
    site.index                                   # site/index.html: open it from disk, nothing is fetched
    convzoo.explore.serve("site", port=8000)     # the same on http://127.0.0.1:8000/ (for convenience)

`site.py` writes the folder (the page, its CSS and JavaScript: package data written here, in static/; the data
as scripts); `network.py` a network page's data (card, `convzoo.draw`'s SVG, `convzoo.summary`'s rows);
`run.py` a run page's (curves, test predictions through the evaluation's functions, confusion matrix, worst
predictions, the explain/ gallery); `server.py` serves a folder on 127.0.0.1 only. docs/explore.md.
"""
from __future__ import annotations

from .network import network_data
from .run import run_data, test_predictions
from .server import serve
from .site import SiteReport, build_site

__all__ = ["SiteReport", "build_site", "network_data", "run_data", "serve", "test_predictions"]
