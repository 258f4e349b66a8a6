#!/usr/bin/env bash
# Builds the real Pacemaker 3.0.2 test peer (pacemaker-based, cibadmin,
# crm_mon, pacemaker-remoted) from ../shared/peers/pacemaker-3.0.2.tar.gz
# into a cache directory keyed by the tarball's SHA-256, never into the repo:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/pcmkeys/pacemaker-3.0.2-<16 hex>/
#
# internal/pcmklab finds it there (same key); its tests skip until it is
# built. The build takes 6-10 minutes on 2 cores, once per machine; later
# runs see the marker file and return in seconds. It is atomic: it builds
# in a temporary directory and renames the finished tree into place.
#
# PCMKEYS_PEERS overrides the directory holding the tarball. Without the
# tarball, root or a build dependency, it says so and exits 0: the tests
# that need the peer skip with the same reason.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
peers=${PCMKEYS_PEERS:-$repo/../shared/peers}
[ ! -d "$peers" ] || peers=$(cd "$peers" && pwd)
tarball=$peers/pacemaker-3.0.2.tar.gz
skip() {
	echo "peers.sh: $*; the Pacemaker 3.0.2 tests will skip" >&2
	exit 0
}

[ -f "$tarball" ] || skip "no $tarball"
sum=$(sha256sum "$tarball" | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pcmkeys
prefix=$cache/pacemaker-3.0.2-$sum
marker=$prefix/.pcmkeys-complete
if [ -f "$marker" ]; then
	echo "Pacemaker 3.0.2 test peer: $prefix (cached)"
	exit 0
fi

[ "$(id -u)" = 0 ] || skip "building and running the peer needs root"
missing=()
for tool in autoconf autopoint automake libtoolize pkg-config make gcc msgfmt; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
if command -v pkg-config >/dev/null; then
	for pc in glib-2.0 libxml-2.0 libxslt gnutls uuid libqb dbus-1 ncurses \
		libcorosync_common libcfg libcmap libcpg libquorum; do
		pkg-config --exists "$pc" || missing+=("$pc.pc")
	done
fi
[ -e /usr/include/security/pam_appl.h ] || missing+=(pam_appl.h)
[ -e /usr/include/ltdl.h ] || missing+=(ltdl.h)
[ -e /usr/include/bzlib.h ] || missing+=(bzlib.h)
if [ ${#missing[@]} -gt 0 ]; then
	skip "build dependencies missing (${missing[*]}; .ci/run installs them)"
fi

echo "building the Pacemaker 3.0.2 test peer into $prefix (6-10 minutes, once per machine)"
mkdir -p "$cache"
# One build at a time per machine: a second caller waits, then finds it cached.
exec 9>"$cache/pacemaker-3.0.2.lock"
flock 9
if [ -f "$marker" ]; then
	echo "Pacemaker 3.0.2 test peer: $prefix (built meanwhile)"
	exit 0
fi
work=$(mktemp -d "$cache/.pacemaker-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
log=$work/build.log
tar -xzf "$tarball" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n1)
stage=$work/stage
if ! (
	cd "$src"
	./autogen.sh
	./configure --prefix="$prefix" --sysconfdir=/etc --localstatedir=/var --with-runstatedir=/run \
		--disable-systemd --disable-nls --disable-fatal-warnings
	make -j"$(nproc)"
	make install DESTDIR="$stage"
) >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	echo "peers.sh: building Pacemaker 3.0.2 failed (log above)" >&2
	exit 1
fi
# Only the prefix: install also writes /etc/init.d, /usr/lib/ocf, /var/...
# into the stage, which nothing here needs. The tree must live at $prefix
# (RUNPATH $prefix/lib), so it is moved there by one rename.
built=$stage$prefix
[ -x "$built/sbin/pacemaker-based" ] || [ -x "$built/libexec/pacemaker/pacemaker-based" ] ||
	{ echo "peers.sh: the build installed no pacemaker-based" >&2; exit 1; }
echo "built $(date -u +%FT%TZ) from $tarball in $(($(date +%s) - start))s" >"$built/.pcmkeys-complete"
rm -rf "$prefix"
mv "$built" "$prefix"
echo "Pacemaker 3.0.2 test peer: $prefix (built in $(($(date +%s) - start))s)"
