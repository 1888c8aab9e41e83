# Sourced by the tests (not one itself: the harness runs only NN-*.sh).
fail() { echo "FAILED: $*"; exit 1; }
# `expect WHAT CMD…`: CMD's output must contain WHAT.
expect() {
	want=$1
	shift
	out=$("$@" 2>&1) || true
	case $out in *"$want"*) ;; *) fail "$* printed '$out', expected '$want'" ;; esac
}
# `takes_along SIG PATTERN CMD…`: CMD, started in the background and sent
# SIG by its parent, this shell, takes along the process PATTERN matches
# in `vps ax` (the command it ran in a context).
takes_along() {
	local sig=$1 pat=$2 client
	shift 2
	"$@" >/dev/null 2>&1 &
	client=$!
	sleep 1
	kill -s "$sig" $client || fail "could not signal $*"
	wait $client
	sleep 0.5
	vps ax | grep -q "$pat" && fail "$pat outlived $* (SIG$sig)"
	return 0
}
