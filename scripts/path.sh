# Sourced (`. ./path.sh`) by need.sh, probe.sh, all.sh and every .do file
# that runs a tool, so each finds the same programs however it was started
# (redo, make, or by hand):
#  - /usr/sbin and /sbin go at the end of PATH: Debian keeps debootstrap
#    there and leaves both off an ordinary user's PATH;
#  - ../target/release goes at the end too, when it holds the project's
#    tools (a `cargo build --release` in the repository this cookbook came
#    from): a tool on PATH wins, a missing one is found there.
for dir in /usr/sbin /sbin; do
	case :$PATH: in
	*:"$dir":*) ;;
	*) [ -d "$dir" ] && PATH=$PATH:$dir ;;
	esac
done
if release=$(cd ../target/release 2>/dev/null && pwd -P) &&
	[ -x "$release/fileids" ]; then
	case :$PATH: in
	*:"$release":*) ;;
	*) PATH=$PATH:$release ;;
	esac
fi
unset dir release
export PATH
