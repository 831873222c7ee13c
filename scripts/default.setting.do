# NAME.setting: the value of the environment variable NAME (empty when it
# is unset), as a file a target can depend on, since redo and make track
# files and not the environment. It is made again on every run
# (redo-always), and counts as changed only when the value did
# (redo-stamp), so `redo-ifchange COMPRESS.setting` rebuilds an image when
# $COMPRESS changes, and only then. The Makefile does the same with a
# rule of its own. Only names of variables: NAME is expanded by eval.
case $2 in
"" | [0-9]* | *[!A-Za-z0-9_]*)
	echo "$1: $2 is not the name of an environment variable" >&2
	exit 1
	;;
esac
eval "value=\${$2-}"
printf '%s\n' "$value" >"$3"
redo-always
redo-stamp <"$3"
