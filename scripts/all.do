# Builds and checks everything this machine can run, then sums up what it
# built, checked and skipped (all.sh, shared with the Makefile's `all`).
exec >&2
exec ./all.sh redo-ifchange
