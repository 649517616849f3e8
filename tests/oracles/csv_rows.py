#!/usr/bin/python3
"""Oracle for tests/io/manifest_test.cpp: Python's csv module (RFC 4180 dialect) on a CSV file.

usage:
  csv_rows.py CSV   -> the header and then every non-blank record as a JSON list, a line each
"""
import csv
import json
import sys

with open(sys.argv[1], newline="", encoding="utf-8") as f:
    for row in csv.reader(f):
        if row:
            print(json.dumps(row))
