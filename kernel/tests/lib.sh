# Sourced by the tests (not one itself: the harness runs only NN-*.sh).
fail() { echo "FAILED: $*"; exit 1; }
# `expect WHAT CMD…`: CMD's output must contain WHAT.
expect() {
	want=$1
	shift
	out=$("$@" 2>&1) || true
	case $out in *"$want"*) ;; *) fail "$* printed '$out', expected '$want'" ;; esac
}
