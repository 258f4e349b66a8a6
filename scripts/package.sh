#!/bin/sh
# Builds pcmkeys's .deb and .rpm into dist/ with nfpm (packaging/nfpm.yaml):
# the binary, its man pages, bash/zsh/fish completions, the systemd units
# from contrib/ and an example /etc/pcmkeys/pcmkeys.yaml. Needs Go and a C
# compiler (cgo, for the system's user database); no root.
#
#   ./scripts/package.sh            # both
#   ./scripts/package.sh deb        # one
#
# The version is $PCMKEYS_VERSION, else from git: a tag vX.Y.Z gives X.Y.Z,
# commits after it X.Y.Z+git.N.gHASH, no tag 0.0.0+git.DATE.gHASH; a tree
# with changes ends in .dirty. Files are dated at the commit
# ($SOURCE_DATE_EPOCH), so a rebuild of a clean tree gives the same files.
set -eu
cd "$(dirname "$0")/.."
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
packagers=${*:-deb rpm}
start=$(date +%s)

if [ -z "${PCMKEYS_VERSION:-}" ]; then
	PCMKEYS_VERSION=0.0.0
	if hash=$(git rev-parse --short=12 HEAD 2>/dev/null); then
		if tag=$(git describe --tags --match 'v[0-9]*' --abbrev=0 2>/dev/null); then
			n=$(git rev-list --count "$tag..HEAD")
			PCMKEYS_VERSION=${tag#v}
			[ "$n" = 0 ] || PCMKEYS_VERSION=$PCMKEYS_VERSION+git.$n.g$hash
		else
			PCMKEYS_VERSION=0.0.0+git.$(TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd).g$hash
		fi
		if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
			case $PCMKEYS_VERSION in *+*) PCMKEYS_VERSION=$PCMKEYS_VERSION.dirty ;; *) PCMKEYS_VERSION=$PCMKEYS_VERSION+dirty ;; esac
		fi
	fi
fi
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
PCMKEYS_ARCH=${PCMKEYS_ARCH:-$(go env GOARCH)}
export PCMKEYS_VERSION SOURCE_DATE_EPOCH PCMKEYS_ARCH

stage=dist/stage
mkdir -p dist
printf '*\n' >dist/.gitignore # nothing built is committed
rm -rf "$stage"
mkdir -p "$stage/man" "$stage/completion" "$stage/systemd"

echo "== build pcmkeys $PCMKEYS_VERSION ($PCMKEYS_ARCH)"
CGO_ENABLED=1 GOARCH=$PCMKEYS_ARCH go build -trimpath -buildvcs=auto \
	-ldflags "-s -w -X main.version=$PCMKEYS_VERSION" -o "$stage/pcmkeys" ./cmd/pcmkeys
"$stage/pcmkeys" --version

# The highest glibc symbol version the binary uses is what it depends on.
PCMKEYS_GLIBC=$(objdump -T "$stage/pcmkeys" | sed -n 's/.*GLIBC_\([0-9.]*\).*/\1/p' | sort -uV | tail -n 1)
[ -n "$PCMKEYS_GLIBC" ] || { echo "package.sh: no glibc version found in the binary (objdump -T)" >&2; exit 1; }
export PCMKEYS_GLIBC

echo "== man pages, completions, units"
"$stage/pcmkeys" man "$stage/man"
gzip -9n "$stage"/man/*.1
"$stage/pcmkeys" completion bash >"$stage/completion/pcmkeys.bash"
"$stage/pcmkeys" completion zsh >"$stage/completion/_pcmkeys"
"$stage/pcmkeys" completion fish >"$stage/completion/pcmkeys.fish"
# The unit in contrib/ runs a binary installed from source, in /usr/local;
# the package's is /usr/bin/pcmkeys.
sed 's#^ExecStart=/usr/local/bin/pcmkeys #ExecStart=/usr/bin/pcmkeys #' \
	contrib/systemd/pcmkeys-rotate.service >"$stage/systemd/pcmkeys-rotate.service"
grep -q '^ExecStart=/usr/bin/pcmkeys ' "$stage/systemd/pcmkeys-rotate.service" || {
	echo "package.sh: contrib/systemd/pcmkeys-rotate.service: no ExecStart=/usr/local/bin/pcmkeys to point at /usr/bin" >&2
	exit 1
}

for p in $packagers; do
	echo "== $p"
	rm -f dist/pcmkeys*."$p" # one package of each kind in dist/: this build's
	go run "$NFPM" package --config packaging/nfpm.yaml --packager "$p" --target dist/
done
ls -l dist/*.deb dist/*.rpm 2>/dev/null || true
echo "packaged in $(($(date +%s) - start)) s"
