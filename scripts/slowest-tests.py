#!/usr/bin/env python3
# Prints the slowest tests of the last `make unit` run (nextest's JUnit report), slowest first,
# so `make test` ends with where the test time goes. Usage: slowest-tests.py JUNIT_XML [COUNT]
import sys
import xml.etree.ElementTree as ET


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print("usage: slowest-tests.py JUNIT_XML [COUNT]", file=sys.stderr)
        return 2
    path = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) == 3 else 10
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        print(f"slowest-tests: cannot read {path}: {err}", file=sys.stderr)
        return 1
    cases = []
    for case in root.iter("testcase"):
        # nextest: classname is the test binary (crate::binary), name the test's path in it.
        cases.append((float(case.get("time", "0")), f"{case.get('classname')} {case.get('name')}"))
    cases.sort(reverse=True)
    total = sum(t for t, _ in cases)
    print(f"slowest {min(count, len(cases))} of {len(cases)} tests "
          f"(sum of test times {total:.0f} s; the run was concurrent):")
    for seconds, name in cases[:count]:
        print(f"  {seconds:7.1f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
