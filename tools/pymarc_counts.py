#!/usr/bin/env python3
"""Counts what pymarc 5.4.0 reads in each file: records and damaged records (pymarc yields
None for those). Prints one JSON object per line: {"path", "ok", "bad"}.
Used by the integration test that compares Jalin's counts with pymarc's.

Usage: python3 tools/pymarc_counts.py FILE...
"""
import json
import sys
import warnings

import pymarc

warnings.simplefilter("ignore")


def count_iso2709(path):
    ok = bad = 0
    with open(path, "rb") as fh:
        reader = pymarc.MARCReader(fh, hide_utf8_warnings=True)
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except Exception:  # a fatal reader error ends the file
                bad += 1
                break
            if record is None:
                bad += 1
            else:
                ok += 1
    return ok, bad


def count_xml(path):
    try:
        records = pymarc.parse_xml_to_array(path)
    except Exception:
        return 0, 1
    return len(records), 0


for path in sys.argv[1:]:
    ok, bad = count_xml(path) if path.endswith(".xml") else count_iso2709(path)
    print(json.dumps({"path": path, "ok": ok, "bad": bad}))
