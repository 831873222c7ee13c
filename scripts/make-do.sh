#!/bin/sh
# usage: ./make-do.sh TARGET...
# Runs TARGET's .do script for make the way redo runs it: TARGET.do or the
# longest matching default.EXT.do in this directory, called with
# $1 = TARGET, $2 = TARGET without the matched extension, $3 = a temporary
# file; the product is $3, else stdout, else nothing; a failure keeps no
# output. make has already built the prerequisites, so redo-ifchange here
# only checks that what the script depends on exists (if not, the Makefile
# lacks a prerequisite), redo-ifcreate, redo-always and redo-stamp do
# nothing (the Makefile's NAME.setting rule does their job), and redo runs
# this.
set -e
here=$(pwd -P)
shims=$here/.make-shims
# redo-stamp is the newest shim: a directory without it is from an older
# make-do.sh, and gets what it lacks below.
if ! [ -x "$shims/redo-stamp" ]; then
	# The first jobs of make -j get here at once: each writes the shims
	# into a directory of its own and renames it into place, so no job
	# runs a shim another is still writing ("Text file busy"); when
	# another job's directory won, the rename fails and ours goes.
	new=$(mktemp -d "$here/.make-shims.XXXXXX")
	cat >"$new/redo-ifchange" <<'SHIM'
#!/bin/sh
for f; do
	if ! [ -e "$f" ] && ! [ -L "$f" ]; then
		echo "make-do.sh: $f is missing: the Makefile lacks a prerequisite" >&2
		exit 1
	fi
done
SHIM
	printf '#!/bin/sh\nexit 0\n' >"$new/redo-ifcreate"
	# The Makefile's NAME.setting rule keeps an unchanged setting itself.
	printf '#!/bin/sh\nexit 0\n' >"$new/redo-always"
	printf '#!/bin/sh\ncat >/dev/null\n' >"$new/redo-stamp"
	printf '#!/bin/sh\nexec "%s/make-do.sh" "$@"\n' "$here" >"$new/redo"
	chmod +x "$new/redo-ifchange" "$new/redo-ifcreate" "$new/redo-always" \
		"$new/redo-stamp" "$new/redo"
	if ! mv -T "$new" "$shims" 2>/dev/null; then
		# Another job's directory won, or an older one is there: it gets
		# each shim it lacks by a rename, which never shows a job a
		# half-written file.
		for f in "$new"/*; do
			[ -x "$shims/${f##*/}" ] || mv -f "$f" "$shims/"
		done
		rm -rf "$new"
	fi
	if ! [ -x "$shims/redo-stamp" ]; then
		echo "make-do.sh: $shims is incomplete: remove it (make clean)" >&2
		exit 1
	fi
fi
for t; do
	do= base=$t
	if [ -e "$t.do" ]; then
		do=$t.do
	else
		rest=$t
		while :; do
			case $rest in
			*.*) rest=${rest#*.} ;;
			*) break ;;
			esac
			if [ -e "default.$rest.do" ]; then
				do=default.$rest.do base=${t%."$rest"}
				break
			fi
		done
	fi
	if [ -z "$do" ]; then
		echo "make-do.sh: no .do file for $t" >&2
		exit 1
	fi
	tmp=$t.make-tmp out=.$t.make-out
	rm -f "$tmp" "$out"
	if ! PATH="$shims:$PATH" sh -e "$do" "$t" "$base" "$tmp" >"$out"; then
		rm -f "$tmp" "$out"
		echo "make-do.sh: $do failed for $t" >&2
		exit 1
	fi
	if [ -e "$tmp" ]; then
		if [ -s "$out" ]; then
			rm -f "$tmp" "$out"
			echo "make-do.sh: $do wrote both \$3 and stdout" >&2
			exit 1
		fi
		rm -f "$out"
		mv -f "$tmp" "$t"
	elif [ -s "$out" ]; then
		mv -f "$out" "$t"
	else
		rm -f "$out"
		[ -d "$t" ] || rm -f "$t"
	fi
done
