#!/usr/bin/env python3
"""Compare an Autobahn TestSuite report with the results we expect, kept in the repo.

usage: autobahn-results.py REPORT_DIR EXPECTED_FILE [--cases PATTERNS] [--exclude PATTERNS] [--update]

The expected file has one line per case: `CASE BEHAVIOR CLOSE_BEHAVIOR`, sorted by case.
PATTERNS are comma-separated, as wstest takes them (`12.*,13.1.*`): only the expected cases they
select (all by default) are compared, so a run of some of the cases checks just those.
Any difference (a case that got better counts too: update the file on purpose) fails with
exit 1 and prints the changed lines. --update rewrites the selected cases' lines from the
report and keeps the others.
"""
import fnmatch, json, os, sys


def case_key(case):
    return [int(p) for p in case.split(".")]


def report(report_dir):
    with open(os.path.join(report_dir, "index.json")) as f:
        data = json.load(f)
    return {case: f"{case} {r.get('behavior')} {r.get('behaviorClose')}"
            for cases in data.values() for case, r in cases.items()}


def selected(case, cases, exclude):
    match = lambda patterns: any(fnmatch.fnmatchcase(case, p) for p in patterns)
    return match(cases) and not match(exclude)


def option(argv, name):
    if name in argv and argv.index(name) + 1 < len(argv):
        value = argv[argv.index(name) + 1]
        return [p for p in value.split(",") if p]
    return None


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip())
        return 2
    report_dir, expected_file = argv[0], argv[1]
    cases = option(argv, "--cases") or ["*"]
    exclude = option(argv, "--exclude") or []
    got = report(report_dir)
    expected = {}
    if os.path.exists(expected_file):
        with open(expected_file) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    expected[line.split()[0]] = line.strip()
    if "--update" in argv:
        merged = {c: l for c, l in expected.items() if not selected(c, cases, exclude)}
        merged.update(got)
        with open(expected_file, "w") as f:
            f.write("\n".join(merged[c] for c in sorted(merged, key=case_key)) + "\n")
        print(f"autobahn: wrote {len(got)} results ({len(merged)} in all) to {expected_file}")
        return 0
    want = {c: l for c, l in expected.items() if selected(c, cases, exclude)}
    if got == want:
        print(f"autobahn: results match {expected_file} ({len(got)} cases)")
        return 0
    for case in sorted(set(want) | set(got), key=case_key):
        if want.get(case) != got.get(case):
            print(f"  expected: {want.get(case, case + ' (not expected)')}")
            print(f"  got:      {got.get(case, case + ' (not run)')}")
    print(f"autobahn: results differ from {expected_file}; if the change is intended, "
          f"run scripts/autobahn.sh --update (check the reports first)")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
