"""The `vdi serve` screenshot of the docs (docs/serve-search.png, on docs/serve.md), made by
the browser test's own code (`vdi_cli.testing_browser.search_and_play`) on a small
synthetic-shapes library indexed with the shipped demo checkpoint (examples/demo-checkpoint),
as `make demo` indexes it.

Run: .venv/bin/python examples/serve_screenshot.py [--png docs/serve-search.png]
(needs Debian's chromium + chromium-driver; about a minute on 2 cores.)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", default=str(ROOT / "docs" / "serve-search.png"))
    parser.add_argument("--videos", type=int, default=12, help="test videos per split")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="serve-shot-") as tmp:
        root = Path(tmp)
        os.environ.update({"VDI_HOME": str(root / "home"), "VDI_DB": str(root / "vdi.db"),
                           "VDI_PLUGINS": ""})
        from vdi_cli.testing import invoke

        data, ckpt = root / "shapes", ROOT / "examples" / "demo-checkpoint"
        for argv in (["datasets", "generate", "synthetic-shapes", "--out", str(data),
                      "--videos", "4", "--test-videos", str(args.videos), "--seed", "0"],
                     ["index", "build", "shapes-test", str(data / "videos" / "test-iid-*.mp4"),
                      "--checkpoint", str(ckpt)]):
            r = invoke(argv)
            assert r.exit_code == 0, r.stderr
        test = json.loads((data / "test_iid.json").read_text())
        vid = sorted(test)[3]
        query = test[vid]["sentences"][0]
        from vdi_cli.serve.app import create_app
        from vdi_cli.testing_browser import search_and_play, serving

        app = create_app(root / "vdi.db", preload=True)
        with serving(app) as url:
            seen = search_and_play(url, query, args.png, min_start=1.0, size=(1280, 800),
                                   settle_s=1.5)
        print(f"query \"{query}\" (ground truth {vid} at {test[vid]['timestamps'][0]} s): "
              f"played #{seen['rank'] + 1} {seen['vid']} {seen['start']}-{seen['end']} s, "
              f"currentTime {seen['current_time']:.2f} s; wrote {args.png}")


if __name__ == "__main__":
    main()
