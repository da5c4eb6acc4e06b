#!/usr/bin/env python3
"""Compare an Autobahn TestSuite report with the results we expect, kept in the repo.

usage: autobahn-results.py REPORT_DIR EXPECTED_FILE [--update]

The expected file has one line per case: `CASE BEHAVIOR CLOSE_BEHAVIOR`, sorted by case.
Any difference (a case that got better counts too: update the file on purpose) fails with
exit 1 and prints the changed lines. --update rewrites the expected file from the report.
"""
import json, os, sys


def results(report_dir):
    with open(os.path.join(report_dir, "index.json")) as f:
        data = json.load(f)
    lines = []
    for agent, cases in data.items():
        for case, r in cases.items():
            lines.append((case, r.get("behavior"), r.get("behaviorClose")))
    lines.sort(key=lambda l: [int(p) for p in l[0].split(".")])
    return [f"{c} {b} {cb}" for c, b, cb in lines]


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip())
        return 2
    report_dir, expected_file = argv[0], argv[1]
    got = results(report_dir)
    if "--update" in argv:
        with open(expected_file, "w") as f:
            f.write("\n".join(got) + "\n")
        print(f"autobahn: wrote {len(got)} expected results to {expected_file}")
        return 0
    with open(expected_file) as f:
        expected = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    if got == expected:
        print(f"autobahn: results match {expected_file} ({len(got)} cases)")
        return 0
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    for line in missing:
        print(f"  expected: {line}")
    for line in extra:
        print(f"  got:      {line}")
    print(f"autobahn: results differ from {expected_file}; if the change is intended, "
          f"run scripts/autobahn.sh --update")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
