#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Run every test program of each build given as LABEL:OBJDIR, or only
# those named after it (LABEL:OBJDIR:NAME:NAME...), print each program's
# cmocka report, and close with one line of totals over all of them:
# "N passed, N failed, N skipped".  Exits non-zero if any test failed or
# any program crashed, or a program named is not there.
#
#   scripts/run-tests.sh plain:build asan:build/asan nobpf:build/nobpf:test_abi
set -u

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

passed=0 failed=0 skipped=0 crashed="" missing=""

for spec in "$@"; do
	IFS=: read -r -a field <<< "$spec"
	label=${field[0]}
	dir=${field[1]}
	if [ "${#field[@]}" -gt 2 ]; then
		progs=()
		for n in "${field[@]:2}"; do
			progs+=("$dir/tests/$n")
		done
	else
		progs=("$dir"/tests/test_*)
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
[ -n "$missing" ] && echo "not built:$missing"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
