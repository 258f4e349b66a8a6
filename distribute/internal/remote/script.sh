# The remote half of pcmkeys's write protocol, for hosts reached over SSH.
# POSIX sh and coreutils only (getent, stat, mkdir, chown, chmod, dd, mv, rm,
# sync, sha256sum, chroot; grep in reap). Key material arrives on stdin, never in
# arguments or the environment. One run works every file a host gets in one
# phase (a batch), and few processes are started: a write costs about ten,
# so that a fan-out to hundreds of hosts stays near the cost of the SSH
# logins themselves.
#
# Usage, one file (answered as ever: output on stdout, a refusal on stderr
# and in the exit code):
#   sh -c 'eval "$1"' pcmkeys SCRIPT OP ROOT PATH OWNER GROUP MODE SHA256 [TMP]
# A batch of files, each a RECORD of eight arguments:
#   sh -c 'eval "$1"' pcmkeys SCRIPT FORM ROOT AS BASE COUNT [RECORD]...
#   RECORD = OP PATH OWNER GROUP MODE SHA256 SIZE TMP
#   SCRIPT  this script's text, so that it can run itself as OWNER. Over
#           SSH the command line carries only the arguments after it: the
#           script comes first on stdin, read exactly by the command's boot
#           (remote.go), which refuses one cut short, then sets it as $1.
#   FORM    batch: each record on its own, a failure stops only that one;
#           chain: the records in order, stopping at the first that fails;
#           single: one record, answered as the one-file usage
#   AS      "" (run as root), or UID:GID:HOME when the script runs itself as
#           OWNER
#   BASE    the number of the first record; COUNT how many to work ("": all)
#   OP      stage | commit | write | abort | reap | remove | inspect | read |
#           sweep | user | converge | removeown | run, or sweep+OP to sweep
#           first. converge: inspect, then write unless the target is a
#           regular file with the owner, group (when GROUP is set), mode and
#           SHA-256 meant; removeown: inspect, then remove the target if it
#           is OWNER's; run (in a batch): run PATH, a command, with sh -c as
#           root once every record before it succeeded, answering its output
#           as "out" lines and its exit code as its end (no key material:
#           it is a command line)
#   ROOT    prefix of every path ("" for /)
#   PATH    absolute, or ~/REL for OWNER's home (validated by the caller)
#   OWNER   a user name; in a batch NAME:UID:GID:HOME, the account a stage
#           answered, is not looked up again
#   MODE    octal permission bits of the file, such as 600
#   SIZE    stage, write, converge: the length of the record's content on
#           stdin, where the contents of a batch follow one another in
#           order; "-" (the one-file usage): all of stdin
#   TMP     stage, write, converge: a random suffix for the temporary file;
#           commit: the temporary file stage named; abort, reap: either
# A batch answers on stdout, a line per fact, each ":N KEY VALUE" for
# record N: "at STEP" (the step under way: sweep, inspect, stage, write,
# commit, abort, remove), "path FULL", "state missing|file|symlink|other
# ...", "swept COUNT", "tmp PATH" and "account UID:GID:HOME" (stage), "out
# LINE" (run), "did
# insync|written|removed", "err CODE MESSAGE", and last "end CODE". Lines
# without the colon are what its commands said on stderr. converge hashes
# a file only if its size is the content's (another cannot be in sync):
# otherwise its state's SHA-256 is "-".
# Exit codes: 0 done; 10 unsafe target; 11 no such user; 12 no such group;
# 13 verification failed; 14 home directory missing; 15 file too large;
# 16 failed, and the record's content was not read to its end (the later
# records of the batch that carry content are not attempted); others:
# failure.
# No file is read or hashed beyond max bytes (the largest file pcmkeys
# writes, remote.MaxRead in Go; a test keeps them equal), so a huge or sparse
# file planted at a target costs nothing.
# Inside a home directory (PATH ~/REL) root only looks OWNER and GROUP up
# (and kills, for reap); then the script runs itself again as OWNER (chroot
# --userspec, with AS), once for a run of such records of one owner, for
# everything else: every test, stat, listing, write, rename, fsync and
# removal on a path in the home. The owner's links there lead only where the
# owner may go anyway: a link swapped in mid-operation cannot make root open,
# list, fsync, stat or remove anything.
# shellcheck disable=SC2088,SC2086,SC2015 # literal ~/ match; splitting on IFS with set -f; A && B || die is intended
set -eu
set -f
umask 077
# sudo may keep the login's PATH, which often lacks chroot's /usr/sbin.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}
export PATH
self=$1
shift
case ${1-} in
batch | chain | single) ;;
*)
	# The one-file usage: OP ROOT PATH OWNER GROUP MODE SHA256 [TMP].
	[ $# -ge 7 ] || {
		printf '%s\n' "usage: OP ROOT PATH OWNER GROUP MODE SHA256 [TMP]" >&2
		exit 2
	}
	set -- single "$2" "" 0 1 "$1" "$3" "$4" "$5" "$6" "$7" - "${8-}"
	;;
esac
form=$1 root=$2 as=$3 i=$4 count=$5
shift 5
r=${root%/}
max=16777216
nl='
'
ifs=' 	
'
pwc=$nl grc=$nl broken=0 failed=0 left=0

# die refuses the record under way with code $1: in a batch as an "err"
# line (and the record's content, if still unread, is read past); alone on
# stderr.
die() {
	c=$1
	shift
	if [ "$form" = single ]; then
		printf '%s\n' "$*" >&2
		exit "$c"
	fi
	printf ':%s err %s %s\n' "$i" "$c" "$*"
	case $left in
	1) skip || c=16 ;;
	lost) c=16 ;;
	esac
	exit "$c"
}

# say answers a fact of the record under way (see the top); alone, only the
# one-file usage's answers are printed, bare.
say() {
	if [ "$form" = single ]; then
		case $1 in tmp | swept | path | state | user)
			shift
			printf '%s\n' "$*"
			;;
		esac
	else
		printf ':%s %s\n' "$i" "$*"
	fi
}

at() { [ "$form" = single ] || printf ':%s at %s\n' "$i" "$1"; }

# reads says whether the record's operation reads content from stdin.
reads() {
	case $op in *stage | *write | *converge) ;; *) return 1 ;; esac
	case $size in 0 | -) return 1 ;; esac
}

# skip reads past the content of a record that is not written.
skip() {
	! reads || dd of=/dev/null bs=64K iflag=fullblock,count_bytes count="$size" status=none
}

# lookup sets uid, gid and home of owner, and with a group gid to its id,
# from the host's name service, once per name in a run. It returns 11 for
# an unknown user, 12 for an unknown group.
lookup() {
	case $pwc in
	*"$nl$owner:"*) ;;
	*)
		# name:password:uid:gid:gecos:home:shell, split without a subprocess.
		pw=$(getent passwd -- "$owner") || return 11
		IFS=:
		set -- $pw
		IFS=$ifs
		pwc="$pwc$owner:$3:$4:${6-}$nl"
		;;
	esac
	pw=${pwc#*"$nl$owner:"}
	pw=${pw%%"$nl"*}
	uid=${pw%%:*} pw=${pw#*:}
	gid=${pw%%:*} home=${pw#*:}
	[ -n "$group" ] || return 0
	case $grc in
	*"$nl$group:"*) ;;
	*)
		gr=$(getent group -- "$group") || return 12
		IFS=:
		set -- $gr
		IFS=$ifs
		grc="$grc$group:$3$nl"
		;;
	esac
	gid=${grc#*"$nl$group:"}
	gid=${gid%%"$nl"*}
}

# locate sets full, dir and base from path and home, and inhome to 1 if
# the file lies in the home directory.
locate() {
	case $path in
	'~/'*)
		case $home in /*) ;; *) die 10 "home directory of $owner is not an absolute path" ;; esac
		case $home/ in */../* | */./* | *//*) die 10 "home directory of $owner is not a clean path" ;; esac
		home=${home%/}
		full=$home/${path#'~/'}
		;;
	*)
		home=
		full=$path
		;;
	esac
	case $full in *"$nl"*) die 10 "the path contains a newline" ;; esac
	dir=${full%/*}
	base=${full##*/}
	inhome=0
	if [ -n "$home" ]; then
		case $dir/ in "$home"/*) inhome=1 ;; esac
	fi
}

# The write protocol (protocol.sh) and the record loop (batch.sh) follow:
# remote.Script joins the three files.
