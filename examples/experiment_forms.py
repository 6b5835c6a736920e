"""The `paper` / `stable` side of examples/experiment.py (issue 20 item 5): the two VDI forms as
configurations, the Table 3 ablations run in one of them (`--ablation-form`, or `better`: the
form with the higher mean test-iid R@1,IoU=0.5 over the seeds run so far), and which test
splits a world has (version 4 adds test-novel-verb). Kept apart from experiment.py, which runs
the experiment.
"""

from __future__ import annotations

ALL_SPLITS = ("test_iid", "test_novel_word", "test_novel_verb")
FORMS = ("paper", "stable")
# the configurations that are VDI in one form (both terms); the ablations take --ablation-form
FORM_CONFIGS = {
    "paper": ("VDI, form paper (Eqs. 2 / 5 as written)", ["-o", "vdi_form=paper"]),
    "stable": ("VDI, form stable (no trivial minima)", ["-o", "vdi_form=stable"]),
}
ABLATIONS = ("vc-qs", "vc-q", "vc-none", "sd-lstm", "sd-trans")


def splits_of(meta: dict) -> tuple[str, ...]:
    """The test splits the generated world has, in ALL_SPLITS' order (meta names them with
    dashes: test-novel-verb)."""
    have = {name.replace("-", "_") for name in meta.get("splits", {})}
    return tuple(s for s in ALL_SPLITS if s in have)


def mean_r1(runs: list[dict], config: str) -> float | None:
    values = [r["eval"]["test_iid"]["forms"]["q"]["metrics"]["R@1,IoU=0.5"]
              for r in runs if r["config"] == config]
    return sum(values) / len(values) if values else None


def better_form(runs: list[dict]) -> tuple[str, str]:
    """(form, why): the form whose runs have the higher mean test-iid R@1,IoU=0.5 (a tie goes
    to stable, the library default); ('', why) when either form has no run."""
    scores = {f: mean_r1(runs, f) for f in FORMS}
    missing = [f for f, v in scores.items() if v is None]
    if missing:
        return "", f"no finished {' or '.join(missing)} run to compare"
    form = "paper" if scores["paper"] > scores["stable"] else "stable"
    return form, (f"test-iid R@1,IoU=0.5 paper {scores['paper']:.2f}, stable "
                  f"{scores['stable']:.2f} (mean over seeds)")


def ablation_flags(name: str, form: str) -> list[str]:
    """The flags an ablation runs with in `form` (nothing for the other configurations)."""
    return ["-o", f"vdi_form={form}"] if name in ABLATIONS and form else []
