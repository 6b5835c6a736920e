"""What `vdi serve` shows over a store, page by page: the last step of `make demo`, run on the
demo's own output (its index, training run and evaluations), through the app `vdi serve` runs
(Starlette's TestClient: no port is opened; the database is opened read-only).

For each page it prints what the page holds, and it fails (exit 1, `Error:`) when a page does
not answer or does not show what the store holds:
- search `/`: the index listed; `/api/search` for a test query, its top moment against the
  query's ground truth (IoU), and that moment's video served with a range request;
- runs `/runs` and the training run's page `/runs/ID` with its per-epoch plots;
- evaluation `/eval/ID` of each model evaluation, its R@1,IoU=0.5 beside `vdi eval`'s own.

Run: .venv/bin/python examples/serve_check.py --db demo-out/home/vdi.db \
        --annotations demo-out/shapes/test_iid.json [--index shapes-test]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def fail(message: str) -> None:
    sys.exit(f"Error: serve check: {message}\nHint: run `make demo` again; "
             "`VDI_HOME=demo-out/home vdi serve` shows the pages in a browser")


def iou(a: list[float], b: list[float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--annotations", required=True, help="a split's annotation JSON "
                        "(synthetic-shapes: {vid: {sentences, timestamps}})")
    parser.add_argument("--index", default=None)
    parser.add_argument("--queries", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from starlette.testclient import TestClient

    from vdi_cli.serve.app import create_app

    app = create_app(args.db, index=args.index, preload=True)
    client = TestClient(app)
    page = client.get("/")
    names = app.state.store.index_names()
    if page.status_code != 200 or not names or names[0] not in page.text:
        fail(f"the search page answered {page.status_code} without the index")
    print(f"search page: sources {', '.join(names)}")
    split = json.loads(Path(args.annotations).read_text())
    for vid in sorted(split)[: args.queries]:
        query, gt = split[vid]["sentences"][0], split[vid]["timestamps"][0]
        answer = client.get("/api/search", params={"q": query, "k": 3})
        if answer.status_code != 200:
            fail(f"/api/search answered {answer.status_code}: {answer.text[:200]}")
        data = answer.json()
        top = data["corpus"][0]["pred_relevant_windows"][0]
        video = next(v for v in data["videos"] if v["vid"] == top[0])
        served = client.get(video["url"], headers={"Range": "bytes=0-1023"})
        if served.status_code != 206:
            fail(f"the video of {top[0]} answered {served.status_code}, not 206")
        where = (f"IoU {iou(top[1:3], gt):.2f} with the ground truth {gt[0]:.1f}-{gt[1]:.1f} s"
                 if top[0] == vid else f"ground truth is in {vid} at {gt[0]:.1f}-{gt[1]:.1f} s")
        print(f"  \"{query}\": top 1 {top[0]} {top[1]:.1f}-{top[2]:.1f} s score {top[3]:.3f} "
              f"({where}); server {data['timings']['server'] * 1000:.0f} ms; video served "
              "(206)")
    runs = client.get("/api/runs", params={"limit": 500}).json()
    if client.get("/runs").status_code != 200 or not runs:
        fail("the runs page shows no run")
    trains = [r for r in runs if r["command"] == "train" and r["status"] == "ok"]
    print(f"runs page: {len(runs)} runs ({', '.join(sorted({r['command'] for r in runs}))})")
    for r in trains[:1]:
        text = client.get(f"/runs/{r['id']}").text
        plots = text.count("<svg")
        if plots == 0:
            fail(f"run {r['id']}'s page draws no plot")
        print(f"  training run {r['id']}: page with {plots} plots")
    shown = 0
    for r in runs:
        view = client.get(f"/api/eval/{r['id']}")
        if r["command"] != "eval" or view.status_code != 200:
            continue
        data = view.json()
        if client.get(f"/eval/{r['id']}").status_code != 200:
            fail(f"the evaluation page of run {r['id']} does not answer")
        stored = [f"{m['split']} {m['value']:.2f}" for m in
                  client.get(f"/api/runs/{r['id']}").json()["metrics"]
                  if m["name"] == "R@1,IoU=0.5"]
        print(f"evaluation page of run {r['id']}: {data['queries_total']} queries, R@1,IoU=0.5 "
              f"{data['recall_at_1']:.2f} (vdi eval's stored metrics: {', '.join(stored)})")
        shown += 1
    if not shown:
        fail("no evaluation of a model to show")
    app.state.store.close()


if __name__ == "__main__":
    main()
