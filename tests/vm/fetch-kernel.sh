#!/bin/bash
# Fetch the Debian cloud kernel used to boot the integration-test VM.
#
# Usage: tests/vm/fetch-kernel.sh [--kernel 6.1|6.12] [CACHE_DIR]
#
#   --kernel 6.1   (default) the package that linux-image-cloud-amd64
#                  currently depends on: Debian 12's own 6.1 cloud kernel
#   --kernel 6.12  the newest linux-image-6.12.*+deb12-cloud-amd64-unsigned
#                  that apt-cache knows: the 6.12 cloud kernel Debian 12
#                  also ships (in bookworm's own archive)
#
# Downloads the chosen package (resolved with apt-cache at run time),
# extracts it under
# CACHE_DIR/kernel/PACKAGE_VERSION/ and runs depmod there.  The result is
# cached by exact package name and version: once extracted, a second run
# does no network access.  Prints the kernel directory on stdout; it holds
#   vmlinuz   the kernel image
#   kver      the kernel release string (uname -r of the guest)
#   root/     the extracted package (root/lib/modules/KVER/...)
#
# Environment:
#   DMREPL_CACHE_DIR   default cache dir (else <srcdir>/build/cache)
#   DMREPL_KERNEL      6.1 or 6.12, as --kernel (the option wins)
#   DMREPL_KERNEL_META meta package to resolve for 6.1 (default
#                      linux-image-cloud-amd64)
#   DMREPL_KERNEL_PKG  exact kernel package, skips resolving (both kernels)
set -euo pipefail

prog=${0##*/}
srcdir=$(cd "$(dirname "$0")/../.." && pwd)

die() { echo "$prog: error: $*" >&2; exit 1; }
note() { echo "$prog: $*" >&2; }

kernel=${DMREPL_KERNEL:-6.1}

# resolve_package: print the exact kernel package name, or nothing.
resolve_package() {
	if [ -n "${DMREPL_KERNEL_PKG:-}" ]; then
		echo "$DMREPL_KERNEL_PKG"
		return
	fi
	case $kernel in
	6.1)
		local meta=${DMREPL_KERNEL_META:-linux-image-cloud-amd64}
		apt-cache depends "$meta" 2>/dev/null |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
		;;
	6.12)
		# No meta package points at it in bookworm: take the newest
		# ABI that has a candidate version.
		local p
		for p in $(apt-cache pkgnames linux-image-6.12. 2>/dev/null |
			grep -E '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$' | sort -rV); do
			if [ -n "$(package_version "$p")" ]; then
				echo "$p"
				return
			fi
		done
		;;
	esac
}

# package_version PKG: print the candidate version of PKG, or nothing.
package_version() {
	apt-cache show --no-all-versions "$1" 2>/dev/null |
		awk '$1 == "Version:" { print $2; exit }'
}

# newest_cached CACHE: print the most recently completed cached kernel dir
# of the chosen series.
newest_cached() {
	local d best="" best_t=0 t
	for d in "$1"/kernel/linux-image-"$kernel".[0-9]*/; do
		[ -f "$d/.complete" ] || continue
		t=$(stat -c %Y "$d/.complete")
		if [ "$t" -ge "$best_t" ]; then best=${d%/}; best_t=$t; fi
	done
	[ -n "$best" ] && echo "$best"
}

# download PKG VERSION DEBDIR: fetch the .deb into DEBDIR, print its path.
download() {
	local pkg=$1 ver=$2 debdir=$3 deb pattern
	pattern="${pkg}_${ver//:/%3a}_*.deb"
	mkdir -p "$debdir"
	deb=$(find "$debdir" -maxdepth 1 -name "$pattern" | head -n 1)
	if [ -z "$deb" ]; then
		note "downloading $pkg=$ver"
		( cd "$debdir" &&
		  apt-get -q -o APT::Sandbox::User=root download "$pkg=$ver" >&2 ) ||
			die "apt-get download $pkg=$ver failed"
		deb=$(find "$debdir" -maxdepth 1 -name "$pattern" | head -n 1)
		[ -n "$deb" ] || die "apt-get download produced no $pattern"
	fi
	echo "$deb"
}

# extract DEB DIR: unpack DEB into DIR/root, run depmod, write DIR/{vmlinuz,kver}.
extract() {
	local deb=$1 dir=$2 tmp kver
	tmp="$dir.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	dpkg-deb -x "$deb" "$tmp/root" || die "dpkg-deb -x $deb failed"
	kver=$(find "$tmp/root/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | head -n 1)
	[ -n "$kver" ] || die "no lib/modules/<version> in $deb"
	[ -f "$tmp/root/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $deb"
	depmod -b "$tmp/root" "$kver" || die "depmod -b $tmp/root $kver failed"
	ln -s "root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
	echo "$kver" > "$tmp/kver"
	touch "$tmp/.complete"
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

main() {
	while [ $# -gt 0 ]; do
		case $1 in
		--kernel) kernel=${2:?--kernel needs 6.1 or 6.12}; shift 2 ;;
		--kernel=*) kernel=${1#*=}; shift ;;
		-*) die "unknown option '$1'" ;;
		*) break ;;
		esac
	done
	case $kernel in 6.1|6.12) ;; *) die "--kernel must be 6.1 or 6.12, not '$kernel'" ;; esac
	local cache=${1:-${DMREPL_CACHE_DIR:-$srcdir/build/cache}}
	local pkg ver dir deb

	[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported"
	for tool in apt-cache apt-get dpkg-deb depmod; do
		command -v "$tool" >/dev/null || die "$tool not found (Debian host required)"
	done
	mkdir -p "$cache/kernel"
	cache=$(cd "$cache" && pwd)

	# Serialise concurrent runs sharing one cache.
	exec 9>"$cache/kernel/.lock"
	flock 9

	pkg=$(resolve_package)
	if [ -z "$pkg" ]; then
		# No package lists yet (fresh machine) or offline: use the cache if we can.
		if dir=$(newest_cached "$cache"); then
			note "cannot resolve kernel package with apt-cache; using cached $dir"
			echo "$dir"
			return
		fi
		note "apt-cache knows no kernel package; running apt-get update once"
		apt-get -q update >&2 || die "apt-get update failed"
		pkg=$(resolve_package)
		[ -n "$pkg" ] || die "cannot resolve the $kernel cloud kernel package"
	fi
	ver=$(package_version "$pkg")
	[ -n "$ver" ] || die "apt-cache has no version for $pkg"

	dir="$cache/kernel/${pkg}_${ver}"
	if [ -f "$dir/.complete" ]; then
		echo "$dir"
		return
	fi
	if ! deb=$(download "$pkg" "$ver" "$cache/debs"); then
		note "download failed; running apt-get update once and retrying"
		apt-get -q update >&2 || die "apt-get update failed"
		pkg=$(resolve_package)
		ver=$(package_version "$pkg")
		if [ -z "$pkg" ] || [ -z "$ver" ]; then
			die "cannot resolve the kernel package after apt-get update"
		fi
		dir="$cache/kernel/${pkg}_${ver}"
		if [ -f "$dir/.complete" ]; then
			echo "$dir"
			return
		fi
		deb=$(download "$pkg" "$ver" "$cache/debs")
	fi
	note "extracting $deb"
	extract "$deb" "$dir"
	# The extracted tree is what we keep; the .deb is not needed again.
	rm -f "$deb"
	echo "$dir"
}

main "$@"
