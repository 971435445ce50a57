#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Install the Debian packages sluice needs, but only those missing: on a
# machine that has them all this costs one dpkg-query and prints nothing.
#
#   scripts/deps.sh            install what is missing (as root)
#   scripts/deps.sh --check    only say what is missing; exit 1 if anything is
#   scripts/deps.sh --bench    also the benchmark peers (DPDK, ck, ZeroMQ, iceoryx)
#   scripts/deps.sh --no-bpf   for make BPF=0: neither libbpf nor the BPF
#                              toolchain counts as missing
set -eu

# Build and test: compiler, libraries.
PKGS="gcc make pkg-config libc6-dev libnuma-dev libcmocka-dev"
# The liveness monitor's eBPF program and its loader (not for BPF=0).
BPF_PKGS="libbpf-dev clang llvm bpftool"
# Peers that sluice-bench measures against; optional.
BENCH_PKGS="libdpdk-dev libck-dev libzmq3-dev libiceoryx-binding-c-dev iceoryx"

check_only=0
bpf=1
bench=0
for arg in "$@"; do
	case "$arg" in
	--check) check_only=1 ;;
	--bench) bench=1 ;;
	--no-bpf) bpf=0 ;;
	*) echo "usage: $0 [--check] [--bench] [--no-bpf]" >&2; exit 2 ;;
	esac
done
[ "$bpf" = 1 ] && PKGS="$PKGS $BPF_PKGS"
[ "$bench" = 1 ] && PKGS="$PKGS $BENCH_PKGS"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

if [ "$check_only" = 1 ]; then
	echo "missing packages:$missing"
	exit 1
fi

if [ "$(id -u)" != 0 ]; then
	echo "sluice needs these packages:$missing" >&2
	echo "install them as root: apt-get install$missing" >&2
	exit 1
fi

echo "  DEPS    installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
