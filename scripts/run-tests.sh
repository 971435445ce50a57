#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Run every test program of each build given as LABEL:OBJDIR, print each
# program's cmocka report, and close with one line of totals over all of
# them: "N passed, N failed, N skipped".  Exits non-zero if any test failed
# or any program crashed.
#
#   scripts/run-tests.sh plain:build asan:build/asan
set -u

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

passed=0 failed=0 skipped=0 crashed=""

for spec in "$@"; do
	label=${spec%%:*}
	dir=${spec#*:}
	for t in "$dir"/tests/test_*; do
		[ -x "$t" ] && [ -f "$t" ] || continue
		name="$label/$(basename "$t")"
		echo "=== $name"
		out=$(SLUICE_OBJTREE="$dir" "$t" 2>&1)
		rc=$?
		printf '%s\n' "$out"
		p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
		f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
		s=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | tail -1)
		passed=$((passed + ${p:-0}))
		failed=$((failed + ${f:-0}))
		skipped=$((skipped + ${s:-0}))
		# A crash or a sanitizer abort leaves no cmocka totals behind.
		if [ "$rc" -ne 0 ] && [ -z "$f" ]; then
			crashed="$crashed $name"
			failed=$((failed + 1))
		fi
	done
done

echo
[ -n "$crashed" ] && echo "crashed or aborted:$crashed"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
