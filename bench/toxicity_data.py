"""Rebuild the public toxicity extracts shipped in bench/data/toxicity/ from upstream snapshots: one command.

    python bench/toxicity_data.py --mirror-root /path/to/git/snapshots

Each source is read from a bare git snapshot (``<root>/<owner>+<name>/repo``, the layout the project's
data-fetch tool produces) at the pinned commit, so the extracts are byte-for-byte reproducible. What is
kept and why (see bench/data/toxicity/README.md for sources and licences):

- conversationai/unintended-ml-bias-analysis: a stratified sample of the English identity templates
  (toxic and non-toxic phrases naming ~50 identity terms: the counterweight to identity-word bias), and the
  1,492 real talk-page comments (split by revision id into train and held-out test);
- Vicomtech/hate-speech-dataset: Stormfront forum sentences labelled hate / noHate (implicit, slur-free
  hate is common there); posts in the authors' own ``sampled_test`` set form the held-out test split;
- paul-rottger/hatecheck-data: the 3,728 HateCheck test cases, split by template family into train and
  held-out test halves. A family is a hateful template with everything derived from it (its spelling
  variants, the counter-speech that quotes it: HateCheck's ``ref_templ_id``), filled for every target group,
  so no test sentence has a near-duplicate in training;
- the same HateCheck templates filled for 14 more identity groups (``hatecheck_more_groups.csv``): one case per
  template and group, with the template family's train/test split. HateCheck names 7 groups; a scorer that is
  fair to those may still flag "I live with two Hindus". Spelling-variant and slur templates are left out (their
  cases are hand-perturbed upstream, not derivable from the template).
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import re
import subprocess
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "toxicity"
SOURCES = {
    "bias": ("conversationai+unintended-ml-bias-analysis", "9c7d91a"),
    "vicomtech": ("Vicomtech+hate-speech-dataset", "b802137"),
    "hatecheck": ("paul-rottger+hatecheck-data", "d843022"),
}
TEMPLATE_SAMPLE = {"name_adj": 2400, "being_adj": 1600, "you_are_adj": 1600, "am_hate_adj": 100,
                   "verb_adj": 400, "you_occupation": 864}


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True).stdout


def _show(repo: Path, commit: str, path: str) -> str:
    return _git(repo, "show", f"{commit}:{path}").decode("utf-8", errors="replace")


def _write(name: str, header: list[str], rows: list[list[str]]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / name).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    print(f"{name}: {len(rows)} rows")


def _clean(text: str) -> str:
    return " ".join(text.split())


def identity_templates(root: Path) -> None:
    repo, commit = root / SOURCES["bias"][0] / "repo", SOURCES["bias"][1]
    rows = list(csv.DictReader(io.StringIO(_show(repo, commit, "sentence_templates/en_sentence_templates.csv"))))
    rng = random.Random(17)
    out: list[list[str]] = []
    for template, k in TEMPLATE_SAMPLE.items():
        pool = [r for r in rows if r["template"] == template]
        for r in sorted(rng.sample(pool, min(k, len(pool))), key=lambda r: (r["toxicity"], r["phrase"])):
            out.append([r["phrase"], "1" if r["toxicity"] == "toxic" else "0", template])
    _write("identity_templates.csv", ["text", "label", "template"], out)
    comments = csv.DictReader(io.StringIO(_show(
        repo, commit, "archive/unintended_ml_bias/eval_datasets/toxicity_nonfuzzed_testset.csv")))
    # Split by revision id parity: deterministic, and no comment is in both splits.
    out = [[_clean(r["comment"]), "1" if r["toxic"] == "True" else "0", "test" if int(r["rev_id"]) % 2 else "train"]
           for r in comments if r["comment"].strip()]
    _write("wiki_comments.csv", ["text", "label", "split"], out)


def vicomtech(root: Path) -> None:
    repo, commit = root / SOURCES["vicomtech"][0] / "repo", SOURCES["vicomtech"][1]
    meta = list(csv.DictReader(io.StringIO(_show(repo, commit, "annotations_metadata.csv"))))
    listing = _git(repo, "ls-tree", "-r", "--name-only", commit).decode().split()
    test_files = {Path(p).stem for p in listing if p.startswith("sampled_test/")}
    # Sentences of one post share its id prefix; a post with any sentence in the authors' test sample is
    # held out whole, so no post is split across train and test.
    test_posts = {f.split("_")[0] for f in test_files}
    out: list[list[str]] = []
    for r in meta:
        if r["label"] not in ("hate", "noHate"):
            continue
        text = _clean(_show(repo, commit, f"all_files/{r['file_id']}.txt"))
        if not text:
            continue
        split = "test" if r["file_id"].split("_")[0] in test_posts else "train"
        out.append([text, "1" if r["label"] == "hate" else "0", split])
    _write("stormfront.csv", ["text", "label", "split"], out)


def hatecheck(root: Path) -> None:
    repo, commit = root / SOURCES["hatecheck"][0] / "repo", SOURCES["hatecheck"][1]
    rows = list(csv.DictReader(io.StringIO(_show(repo, commit, "test_suite_cases.csv"))))
    families = sorted({r["ref_templ_id"] or r["templ_id"] for r in rows}, key=lambda f: int(float(f)))
    test = set(random.Random(17).sample(families, len(families) // 2))
    out = [[_clean(r["test_case"]), "1" if r["label_gold"] == "hateful" else "0", r["functionality"],
            r["target_ident"], "test" if (r["ref_templ_id"] or r["templ_id"]) in test else "train",
            str(int(float(r["ref_templ_id"] or r["templ_id"])))] for r in rows]
    _write("hatecheck.csv", ["text", "label", "functionality", "target_ident", "split", "family"], out)


# The 14 groups added to HateCheck's 7: (group, singular, plural, adjective), filling [IDENTITY_S], [IDENTITY_P],
# [IDENTITY_A] as HateCheck's template_placeholders.csv does for its own groups.
MORE_GROUPS = (
    ("jewish people", "Jewish person", "Jewish people", "Jewish"),
    ("asian people", "Asian person", "Asian people", "Asian"),
    ("chinese people", "Chinese person", "Chinese people", "Chinese"),
    ("mexicans", "Mexican", "Mexicans", "Mexican"),
    ("latino people", "Latino", "Latinos", "Latino"),
    ("native americans", "Native American", "Native Americans", "Native American"),
    ("middle eastern people", "Middle Eastern person", "Middle Eastern people", "Middle Eastern"),
    ("arabs", "Arab", "Arabs", "Arab"),
    ("hindus", "Hindu", "Hindus", "Hindu"),
    ("lesbians", "lesbian", "lesbians", "lesbian"),
    ("bisexual people", "bisexual person", "bisexual people", "bisexual"),
    ("lgbtq people", "LGBTQ person", "LGBTQ people", "LGBTQ"),
    ("mentally ill people", "mentally ill person", "mentally ill people", "mentally ill"),
    ("autistic people", "autistic person", "autistic people", "autistic"),
)


def fill_template(template: str, singular: str, plural: str, adjective: str) -> str:
    """A HateCheck case template with the identity slots filled: "a" becomes "an" before a value read with a
    vowel sound (Asian, Arab, LGBTQ), and a slot opening the sentence is capitalised."""
    text = template
    for slot, value in (("[IDENTITY_S]", singular), ("[IDENTITY_P]", plural), ("[IDENTITY_A]", adjective)):
        if value[0] in "AEIOUaeiou" or value.startswith("LGBTQ"):
            text = re.sub(r"\b([Aa]) " + re.escape(slot), lambda m, v=value: f"{m.group(1)}n {v}", text)
        text = text.replace(slot, value)
    return _clean(text[:1].upper() + text[1:])


def hatecheck_more_groups(root: Path) -> None:
    repo, commit = root / SOURCES["hatecheck"][0] / "repo", SOURCES["hatecheck"][1]
    rows = list(csv.DictReader(io.StringIO(_show(repo, commit, "test_suite_cases.csv"))))
    families = sorted({r["ref_templ_id"] or r["templ_id"] for r in rows}, key=lambda f: int(float(f)))
    test = set(random.Random(17).sample(families, len(families) // 2))  # the split hatecheck() uses
    templates: dict[str, dict[str, str]] = {}
    for r in rows:
        t = r["case_templ"]
        if "[IDENTITY" in t and "[SLUR" not in t and not r["functionality"].startswith("spell_"):
            templates.setdefault(r["templ_id"], r)
    out = []
    for r in sorted(templates.values(), key=lambda r: int(float(r["templ_id"]))):
        family = r["ref_templ_id"] or r["templ_id"]
        for group, singular, plural, adjective in MORE_GROUPS:
            out.append([fill_template(r["case_templ"], singular, plural, adjective),
                        "1" if r["label_gold"] == "hateful" else "0", r["functionality"], group,
                        "test" if family in test else "train", str(int(float(family)))])
    _write("hatecheck_more_groups.csv", ["text", "label", "functionality", "target_ident", "split", "family"], out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror-root", type=Path, required=True,
                        help="directory holding <owner>+<name>/repo bare snapshots of the three sources")
    args = parser.parse_args()
    identity_templates(args.mirror_root)
    vicomtech(args.mirror_root)
    hatecheck(args.mirror_root)
    hatecheck_more_groups(args.mirror_root)


if __name__ == "__main__":
    main()
