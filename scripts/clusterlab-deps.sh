#!/usr/bin/env bash
# Unpacks Debian's Pacemaker packages privately for internal/clusterlab (the
# live-cluster lab), into a cache directory, never into the repo or onto the
# machine:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/pcmkeys/debian-pacemaker-<version>/root/
#
# Debian's `pacemaker` Conflicts with `pacemaker-remote`: installing one
# removes the other. So the lab installs neither by force: this script
# `apt-get download`s both (and the libraries and tools they need, at the
# version of whichever is installed) and `dpkg-deb -x`es them into one tree
# that the lab lays over /usr inside its nodes only. corosync itself is an
# ordinary install (.ci/run). Once unpacked, later runs return at once.
#
# Without root, apt-get or the package mirror it says so and exits 0: the
# lab's tests skip with the same reason.
set -euo pipefail
skip() {
	echo "clusterlab-deps.sh: $*; the live-cluster tests will skip" >&2
	exit 0
}
[ "$(id -u)" = 0 ] || skip "unpacking needs root (apt-get download)"
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || skip "not a Debian machine"

# The version of the Pacemaker on the machine; the candidate when neither is installed.
ver=$(dpkg-query -W -f='${Version}' pacemaker-remote 2>/dev/null || true)
[ -n "$ver" ] || ver=$(dpkg-query -W -f='${Version}' pacemaker 2>/dev/null || true)
[ -n "$ver" ] || ver=$(apt-cache policy pacemaker | awk '/Candidate:/ {print $2}')
[ -n "$ver" ] && [ "$ver" != "(none)" ] || skip "apt knows no pacemaker package (run apt-get update)"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/pcmkeys
dest=$cache/debian-pacemaker-$ver
marker=$dest/.pcmkeys-complete
if [ -f "$marker" ]; then
	echo "Debian Pacemaker $ver for the cluster lab: $dest (cached)"
	exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/debian-pacemaker.lock"
flock 9
if [ -f "$marker" ]; then
	echo "Debian Pacemaker $ver for the cluster lab: $dest (unpacked meanwhile)"
	exit 0
fi

# Everything of Pacemaker's own that a full node or a remote node runs; the
# libraries come along so the tree is consistent whatever is installed.
pkgs="pacemaker pacemaker-remote pacemaker-cli-utils pacemaker-common pacemaker-resource-agents
libcib27 libcrmcluster29 libcrmcommon34 libcrmservice28 liblrmd28 libpacemaker1 libpe-rules26
libpe-status28 libstonithd26"
work=$(mktemp -d "$cache/.debian-pacemaker.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir "$work/debs" "$work/root"
(
	cd "$work/debs"
	for p in $pkgs; do
		# The installed version first; a newer candidate if the mirror no longer has it.
		apt-get download -qq "$p=$ver" 2>/dev/null || apt-get download -qq "$p"
	done
) || skip "apt-get download failed (no mirror? run apt-get update)"
for deb in "$work"/debs/*.deb; do
	dpkg-deb -x "$deb" "$work/root"
done
[ -x "$work/root/usr/sbin/pacemakerd" ] && [ -x "$work/root/usr/sbin/pacemaker-remoted" ] ||
	{ echo "clusterlab-deps.sh: the packages hold no pacemakerd or pacemaker-remoted" >&2; exit 1; }
ls "$work/debs" >"$work/root/.packages"
echo "unpacked $(date -u +%FT%TZ): $(ls "$work/debs" | tr '\n' ' ')" >"$work/root/.pcmkeys-complete"
rm -rf "$dest"
mv "$work/root" "$dest"
echo "Debian Pacemaker $ver for the cluster lab: $dest"
