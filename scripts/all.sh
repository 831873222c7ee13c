#!/bin/sh
# usage: ./all.sh BUILD-COMMAND...
# `all` for redo (all.do runs `./all.sh redo-ifchange`) and for make (the
# Makefile runs `./all.sh $(MAKE)`): asks probe.sh what this machine can
# build, builds that with BUILD-COMMAND, checks it (check.sh), and ends
# with a summary of what it built, checked and left out, each with its
# reason. It fails when the project's tools are missing (need.sh's
# message), when nothing is buildable, when a build or check fails, and
# with STRICT=1 when anything was skipped because the machine lacks it
# (a NO_* variable that asks to leave something out is not an error).
. ./path.sh
if [ -n "${COOKBOOK_ALL:-}" ]; then
	# A target that builds `all` again would recurse without end (as
	# `make` once did when probe.sh printed no target): stop instead.
	echo "all.sh: called from inside all: refusing to recurse" >&2
	exit 1
fi
COOKBOOK_ALL=1
export COOKBOOK_ALL
notes=$(mktemp "${TMPDIR:-/tmp}/probe.XXXXXX") || exit 1
trap 'rm -f "$notes"' EXIT
if ! targets=$(./probe.sh 2>"$notes"); then
	cat "$notes" >&2
	exit 1
fi
cat "$notes" >&2
if [ -z "$targets" ]; then
	echo "all.sh: nothing this machine can build (the reasons are above)" >&2
	exit 1
fi
# Word splitting is wanted: one target per word.
# shellcheck disable=SC2086
if "$@" $targets; then
	built=ok
	./check.sh $targets
	checked=$?
else
	built=failed checked=
fi
summary() { printf 'all: %s\n' "$*" >&2; }
echo >&2
# shellcheck disable=SC2086
summary "built:" $targets "($built)"
if [ -z "$checked" ]; then
	summary "checked: nothing (the build failed)"
elif [ "$checked" = 0 ]; then
	summary "checked: every target ok"
else
	summary "checked: some failed (see 'checking' above)"
fi
strict=
while IFS= read -r line; do
	case $line in
	"skipping "*) summary "skipped ${line#skipping }"; strict=1 ;;
	"leaving out "*) summary "left out ${line#leaving out }" ;;
	esac
done <"$notes"
[ "$built" = ok ] && [ "$checked" = 0 ] || exit 1
if [ -n "$strict" ] && [ -n "${STRICT:-}" ] && [ "$STRICT" != 0 ]; then
	summary "STRICT=$STRICT: a skip is an error"
	exit 1
fi
exit 0
