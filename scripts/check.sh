#!/bin/sh
# usage: ./check.sh TARGET...
# Checks what the built targets say: hello prints "Hello, world!", the
# Debian container counts 80-110 packages, a .gz unpacks. Fails if any fails.
failed=0
result() {
	printf 'checking %-20s %s\n' "$1:" "$2" >&2
	[ "$2" = ok ] || failed=1
}
for t in "$@"; do
	case $t in
	*.gz)
		if gzip -t "$t" 2>/dev/null; then result "$t" ok; else result "$t" failed; fi ;;
	debian.run*)
		n=$(cat "$t")
		if [ "$n" -ge 80 ] 2>/dev/null && [ "$n" -le 110 ]; then
			result "$t" ok
		else
			result "$t" "failed (got '$n', want 80-110)"
		fi ;;
	*.run*)
		if [ "$(cat "$t")" = "Hello, world!" ]; then result "$t" ok
		else result "$t" "failed (got '$(cat "$t")')"; fi ;;
	*)
		if [ -s "$t" ]; then result "$t" ok; else result "$t" "failed (empty)"; fi ;;
	esac
done
exit $failed
