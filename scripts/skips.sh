#!/bin/sh
# usage: scripts/skips.sh DIR
# Prints, on stderr, every skip recorded in DIR (one file per test
# executable, one `PACKAGE TEST: WHY` line per skip, written by
# testkit::skip), sorted, or that none was. scripts/test.sh ends with it.
dir=$1
if [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
	echo "test.sh: skipped ($(cat "$dir"/* | wc -l)), and why:" >&2
	LC_ALL=C sort "$dir"/* | sed 's/^/  /' >&2
else
	echo "test.sh: no test skipped" >&2
fi
