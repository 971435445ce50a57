#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Run every test program of each build given as LABEL:OBJDIR, or only
# those named after it (LABEL:OBJDIR:NAME:NAME...), print each program's
# cmocka report whole, in the order given, and close with one line of
# totals over all of them: "N passed, N failed, N skipped".  Exits non-zero
# if any test failed or any program crashed, or a program named is not
# there.
#
# The programs are independent: up to -j N of them run at once (default
# $SLUICE_TEST_JOBS, else one per CPU), each with its output kept apart
# until it ends.  A program named with -a, in whichever build, runs with
# no other beside it, for a program that shares something machine-wide
# with its copies in the other builds or whose timing a busy CPU breaks;
# those run first, one by one, so that no slot stands idle waiting for
# the others to end.
#
#   scripts/run-tests.sh -j 2 -a test_region plain:build asan:build/asan nobpf:build/nobpf:test_abi
set -u

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

jobs=${SLUICE_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
alone=" "
while getopts "j:a:" opt; do
	case $opt in
	j) jobs=$OPTARG ;;
	a) alone="$alone$OPTARG " ;;
	*) echo "usage: $0 [-j N] [-a NAME]... LABEL:OBJDIR[:NAME...]..." >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
case $jobs in
''|*[!0-9]*|0) echo "$0: -j wants a number of programs, not '$jobs'" >&2; exit 2 ;;
esac

passed=0 failed=0 skipped=0 crashed="" missing=""

# The queue, in the order given: a program's path, its LABEL/NAME and its
# build's directory.
prog=() name=() dir=()
for spec in "$@"; do
	IFS=: read -r -a field <<< "$spec"
	label=${field[0]}
	d=${field[1]}
	if [ "${#field[@]}" -gt 2 ]; then
		progs=()
		for n in "${field[@]:2}"; do
			progs+=("$d/tests/$n")
		done
	else
		progs=("$d"/tests/test_*)
	fi
	for t in "${progs[@]}"; do
		if ! [ -x "$t" ] || ! [ -f "$t" ]; then
			# Named, so it must be there; a glob that matched nothing is not.
			if [ "${#field[@]}" -gt 2 ]; then
				missing="$missing $label/$(basename "$t")"
				failed=$((failed + 1))
			fi
			continue
		fi
		prog+=("$t")
		name+=("$label/$(basename "$t")")
		dir+=("$d")
	done
done

out=$(mktemp -d) || exit 1
trap 'rm -rf "$out"' EXIT

# Program @1 of the queue, in the background: its output in $out/N, then
# its exit status in $out/N.rc (renamed into place: once there, whole).
start() {
	local i=$1
	(
		t0=$(date +%s%N)
		SLUICE_OBJTREE="${dir[$i]}" "${prog[$i]}" > "$out/$i" 2>&1
		rc=$?
		echo "$rc $(( ($(date +%s%N) - t0) / 1000000 ))" > "$out/$i.tmp"
		mv "$out/$i.tmp" "$out/$i.rc"
	) &
	running=$((running + 1))
}

# Print every program that has ended, from the first not printed yet up to
# the first not ended, so that reports come in the order given.
printed=0
report() {
	local i rc ms p f s
	while [ "$printed" -lt "${#prog[@]}" ] && [ -f "$out/$printed.rc" ]; do
		i=$printed
		read -r rc ms < "$out/$i.rc"
		printf '=== %s (%d.%d s)\n' "${name[$i]}" $((ms / 1000)) $((ms % 1000 / 100))
		cat "$out/$i"
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out/$i" | tail -1)
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out/$i" | tail -1)
		s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$out/$i" | tail -1)
		passed=$((passed + ${p:-0}))
		failed=$((failed + ${f:-0}))
		skipped=$((skipped + ${s:-0}))
		# A crash or a sanitizer abort leaves no cmocka totals behind.
		if [ "$rc" -ne 0 ] && [ -z "$f" ]; then
			crashed="$crashed ${name[$i]}"
			failed=$((failed + 1))
		fi
		rm -f "$out/$i" "$out/$i.rc"
		printed=$((printed + 1))
	done
}

# One ended (any): wait for it, count it out, print what can be printed.
reap() {
	wait -n
	running=$((running - 1))
	report
}

running=0
for i in "${!prog[@]}"; do
	if [[ "$alone" == *" $(basename "${prog[$i]}") "* ]]; then
		start "$i"
		reap
	fi
done
for i in "${!prog[@]}"; do
	[[ "$alone" == *" $(basename "${prog[$i]}") "* ]] && continue
	while [ "$running" -ge "$jobs" ]; do
		reap
	done
	start "$i"
done
while [ "$running" -gt 0 ]; do
	reap
done

echo
[ -n "$crashed" ] && echo "crashed or aborted:$crashed"
[ -n "$missing" ] && echo "not built:$missing"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
