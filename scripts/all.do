# Builds and checks everything this machine can run; says what it skips.
exec >&2
targets=$(./probe.sh)
redo-ifchange $targets
./check.sh $targets
