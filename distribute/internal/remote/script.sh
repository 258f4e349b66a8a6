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
#   SCRIPT  this script's text, so that it can run itself as OWNER
#   FORM    batch: each record on its own, a failure stops only that one;
#           chain: the records in order, stopping at the first that fails;
#           single: one record, answered as the one-file usage
#   AS      "" (run as root), or UID:GID:HOME when the script runs itself as
#           OWNER
#   BASE    the number of the first record; COUNT how many to work ("": all)
#   OP      stage | commit | write | abort | reap | remove | inspect | read |
#           sweep | user | converge | removeown, or sweep+OP to sweep first
#           converge: inspect, then write unless the target is a regular
#           file with the owner, group (when GROUP is set), mode and SHA-256
#           meant; removeown: inspect, then remove the target if it is
#           OWNER's
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
# ...", "swept COUNT", "tmp PATH" and "account UID:GID:HOME" (stage), "did
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

# athome sets h to 1 if directory $cur is the home directory or inside
# it, else to 0.
athome() {
	h=0
	if [ -n "$home" ]; then
		case $cur/ in "$home"/*) h=1 ;; esac
	fi
}

# walk checks every directory from the root down, without following links,
# and refuses one writable by anyone but root (or, from the home directory
# down, its owner); the same stat reads the target (tst: uid gid mode size
# owner group), if there is one. Only then, with create=1, it makes the
# missing directories; with create=0 it returns 1 if one is missing. The
# checks are made once per record, the creation when it is asked for.
walk() {
	[ "$walked" = 1 ] || check
	# In a home (walked as its owner), the owner must be let into every
	# directory, and to write, into the deepest that exists.
	if [ "$create" = 1 ] && [ "$inhome" = 1 ] && [ "$deepowned" = 1 ]; then
		[ -w "$r$deepest" ] || die 1 "$owner may not write in directory $deepest"
	fi
	[ -n "$missing" ] || return 0
	[ "$create" = 1 ] || return 1
	cur=$deepest
	[ "$cur" != / ] || cur=''
	IFS=$nl
	set -- $missing
	IFS=$ifs
	for c; do
		cur=$cur/$c
		athome
		if [ "$h" = 1 ]; then
			mkdir -m 700 -- "$r$cur"
		elif [ "$#" = 1 ]; then
			mkdir -m 750 -- "$r$cur"
			chown -h -- "0:$gid" "$r$cur"
		else
			mkdir -m 755 -- "$r$cur"
		fi
		shift
	done
	missing='' deepest=$cur deepowned=$h
	return 0
}

# check is walk's checks (lists are split on newlines only, so a component
# may hold spaces).
check() {
	[ -d "${r:-/}" ] || die 1 "the host's root directory $r does not exist"
	cur='' list="${r:-/}" shown=/ owned=0 missing='' tst=''
	IFS=/
	set -- ${dir#/}
	IFS=$ifs
	for c; do
		cur=$cur/$c
		athome
		if [ -z "$missing" ]; then
			[ ! -L "$r$cur" ] || die 10 "directory $cur is a symbolic link"
			if [ -e "$r$cur" ]; then
				[ -d "$r$cur" ] || die 10 "$cur is not a directory"
				list="$list$nl$r$cur"
				shown="$shown$nl$cur"
				owned="$owned$nl$h"
				continue
			fi
			if [ -n "$home" ] && { [ "$h" = 0 ] || [ "$cur" = "$home" ]; }; then
				die 14 "home directory $home of $owner does not exist"
			fi
		fi
		missing="$missing$nl$c"
	done
	missing=${missing#"$nl"}
	t=$r$full
	tgt=0
	if [ -z "$missing" ] && { [ -L "$t" ] || [ -e "$t" ]; }; then
		tgt=1
		list="$list$nl$t"
	fi
	# One stat for every existing directory and the target, line by line.
	IFS=$nl
	st=$(stat -c '%u %g %a %s %U %G' -- $list) || die 1 "could not stat the directories of $full"
	set -- $shown
	for o in $owned; do
		line=${st%%"$nl"*}
		st=${st#*"$nl"}
		u=${line%% *} a=${line#* * }
		a=${a%% *}
		if [ "$u" != 0 ] && ! { [ "$o" = 1 ] && [ "$u" = "$uid" ]; }; then
			die 10 "directory $1 is owned by uid $u, not root"
		fi
		[ $((0$a & 022)) = 0 ] || die 10 "directory $1 is writable by group or other (mode $a)"
		shift
	done
	[ "$tgt" = 0 ] || tst=$st
	set -- $list
	for o in $owned; do
		[ "$o" = 0 ] || [ -x "$1" ] || die 1 "$owner may not enter directory ${1#"$r"}"
		shift
	done
	IFS=$ifs
	deepest=${shown##*"$nl"}
	deepowned=${owned##*"$nl"}
	walked=1
}

# target refuses a target that is a link or not a regular file, or a file
# owned by anyone but root and the owner.
target() {
	t=$r$full
	[ ! -L "$t" ] || die 10 "$full is a symbolic link"
	if [ -e "$t" ] && [ ! -f "$t" ]; then die 10 "$full is not a regular file"; fi
	if [ -f "$t" ]; then
		[ -n "$tst" ] || tst=$(stat -c '%u %g %a %s %U %G' -- "$t")
		u=${tst%% *}
		if [ "$u" != 0 ] && [ "$u" != "$uid" ]; then
			die 10 "$full is owned by uid $u, neither root nor $owner: someone else put it there; check it, remove it, and rerun"
		fi
	fi
}

# sweep removes the temporary files an interrupted write of the target
# left beside it (the caller holds the cluster lock), and sets n to how
# many. Those are .BASE.pcmkeys-HEX (this script's) and .BASE followed by
# decimal digits (the Go side's, writing on its own machine), regular
# files or links (removed, never followed).
sweep() {
	n=0
	set +f
	for f in "$r$dir"/.*; do
		s=${f##*/}
		case $s in
		".$base.pcmkeys-"*) s=${s#".$base.pcmkeys-"} ;;
		".$base"[0-9]*)
			s=${s#".$base"}
			case $s in *[!0-9]*) continue ;; esac
			;;
		*) continue ;;
		esac
		case $s in *[!0-9a-f]* | '') continue ;; esac
		if [ -L "$f" ] || [ -f "$f" ]; then
			rm -f -- "$f"
			n=$((n + 1))
		fi
	done
	set -f
	if [ "$n" -gt 0 ]; then sync -- "$r$dir"; fi
}

stage() {
	create=1
	walk
	target
	sweep
	case $tmp in *[!0-9a-f]* | '') die 2 "bad temporary file suffix" ;; esac
	tmp=$r$dir/.$base.pcmkeys-$tmp
	cnt=''
	[ "$size" = - ] || cnt="iflag=fullblock,count_bytes bs=64K count=$size"
	# Any failure from here on (a full disk) removes the partial temp file.
	left=lost
	if ! { dd of="$tmp" conv=excl,fsync oflag=nofollow $cnt status=none && left=0 &&
		{ [ "$inhome" = 1 ] || chown -h -- "$uid:$gid" "$tmp"; } &&
		{ [ "$mode" = 600 ] || chmod -- "$mode" "$tmp"; }; }; then
		rm -f -- "$tmp"
		die 1 "$full: could not write the staged file (disk full?)"
	fi
}

ours() {
	case $tmp in "$r$dir/.$base.pcmkeys-"*) ;; *) die 10 "$tmp is not a pcmkeys temporary file of $full" ;; esac
	case ${tmp#"$r$dir/"} in */*) die 10 "$tmp is not in the directory of $full" ;; esac
}

commit() {
	ours
	[ ! -L "$tmp" ] && [ -f "$tmp" ] || die 10 "the staged file $tmp is gone or was replaced"
	target
	mv -fT -- "$tmp" "$t"
	sync -- "$r$dir"
	verify
}

# hash prints the SHA-256 of a file's first max+1 bytes (of the whole file
# if it is no larger than that; a larger one cannot match anything pcmkeys
# wrote), or "-" if it cannot be read (in a home, as its owner).
hash() {
	s=$({ { dd if="$1" iflag=nofollow,count_bytes count=$((max + 1)) bs=64K status=none 2>/dev/null ||
		echo FAILED >&3; } | sha256sum; } 3>&1)
	case $s in
	*FAILED*) printf '%s' - ;;
	*) printf '%s' "${s%% *}" ;;
	esac
}

# checkstaged removes a staged file whose content is not what was sent
# (a connection cut mid-transfer leaves dd a short stdin).
checkstaged() {
	if [ "$(hash "$tmp")" != "$sum" ]; then
		rm -f -- "$tmp"
		die 13 "$full: the staged content's SHA-256 differs from what was sent"
	fi
}

# reap kills what is left of an earlier command of pcmkeys on this
# temporary file, one whose connection pcmkeys gave up on (a stopped or
# hung command would otherwise go on once it resumes, and could write the
# file again or rename it over the target): every process but this
# session's whose arguments hold the file's random suffix.
reap() {
	case $tmp in /*) sfx=${tmp##*.pcmkeys-} ;; *) sfx=$tmp ;; esac
	case $sfx in *[!0-9a-f]* | '') die 2 "bad temporary file suffix" ;; esac
	[ "${#sfx}" -ge 16 ] || die 2 "bad temporary file suffix"
	# This session and this script's ancestors (sudo) are spared.
	read -r s </proc/$$/stat
	set -- ${s##*) }
	mine=$4 spare=" $$ " p=$2
	while [ "$p" -gt 1 ] && read -r s </proc/"$p"/stat; do
		spare="$spare$p "
		set -- ${s##*) }
		p=$2
	done
	set +f
	found=$(grep -lsF -e "$sfx" /proc/[0-9]*/cmdline || :)
	set -f
	for p in $found; do
		p=${p#/proc/}
		p=${p%/cmdline}
		case $spare in *" $p "*) continue ;; esac
		read -r s </proc/"$p"/stat 2>/dev/null || continue
		set -- ${s##*) }
		[ "$4" = "$mine" ] || kill -KILL "$p" 2>/dev/null || :
	done
}

verify() {
	[ ! -L "$t" ] && [ -f "$t" ] || die 13 "$full is not a regular file after the rename"
	st=$(stat -c '%u %g %a' -- "$t")
	[ "$st" = "$uid $gid $mode" ] || die 13 "$full is $st (uid gid mode), want $uid $gid $mode"
	[ "$(hash "$t")" = "$sum" ] || die 13 "$full: its SHA-256 differs from what was written"
}

# inspect answers the full path, then what is there (without following a
# link): its kind, uid, gid, mode with the special bits, size, owner and
# group names, and for a regular file no larger than max its SHA-256 ("-"
# for none). It sets kind (missing, file, symlink, other) and for a file
# fsum.
inspect() {
	want=${1-}
	say path "$full"
	create=0
	kind=missing
	if ! walk || [ -z "$tst" ]; then
		say state missing
		return 0
	fi
	t=$r$full
	# A uid that several accounts share is named as the owner asked about.
	set -- $tst
	[ "$1" != "$uid" ] || tst="$1 $2 $3 $4 $owner $6"
	if [ -L "$t" ]; then
		kind=symlink
	elif [ ! -f "$t" ]; then
		kind=other
	else
		kind=file
		fsum=-
		if [ "$4" -le "$max" ] && { [ -z "$want" ] || [ "$4" = "$want" ]; }; then
			fsum=$(hash "$t")
		fi
		say state file $tst "$fsum"
		return 0
	fi
	say state $kind $tst
}

# insync says whether the target inspect found is what the record means:
# a regular file with its owner, group (if one is named), mode and SHA-256.
insync() {
	[ "$kind" = file ] || return 1
	set -- $tst
	[ "$1" = "$uid" ] && [ "$3" = "$mode" ] && [ "$fsum" = "$sum" ] || return 1
	[ -z "$group" ] || [ "$6" = "$group" ]
}

remove() {
	create=0
	walk || return 0
	t=$r$full
	if [ -L "$t" ] || [ -f "$t" ]; then
		rm -f -- "$t"
		sync -- "$r$dir"
	elif [ -e "$t" ]; then
		die 10 "$full is not a regular file"
	fi
}

abort() {
	create=0
	walk || return 0
	case $tmp in
	/*) ;;
	*[!0-9a-f]* | '') die 2 "bad temporary file suffix" ;;
	*) tmp=$r$dir/.$base.pcmkeys-$tmp ;;
	esac
	ours
	rm -f -- "$tmp"
}

# one works the record under way, as root or as its owner.
one() {
	left=0 walked=0
	! reads || left=1
	acct=$uid:$gid:$home
	locate
	case $op in
	sweep+*)
		op=${op#sweep+}
		at sweep
		create=0
		n=0
		if walk; then sweep; fi
		say swept "$n"
		;;
	esac
	case $op in
	stage)
		at stage
		stage
		checkstaged
		say tmp "$tmp"
		say account "$acct"
		;;
	write)
		at write
		stage
		checkstaged
		commit
		say did written
		;;
	commit)
		at commit
		create=0
		walk || die 1 "the directory of $full is gone"
		commit
		;;
	abort | reap)
		at abort
		[ "$op" = abort ] || [ -n "$as" ] || reap
		abort
		;;
	remove)
		at remove
		remove
		;;
	sweep)
		at sweep
		create=0
		n=0
		if walk; then sweep; fi
		say swept "$n"
		;;
	read)
		create=0
		walk || die 1 "$full does not exist"
		t=$r$full
		[ ! -L "$t" ] || die 10 "$full is a symbolic link"
		[ -f "$t" ] || die 1 "$full is not a regular file or does not exist"
		[ -n "$tst" ] || tst=$(stat -c '%u %g %a %s %U %G' -- "$t")
		size=${tst#* * * }
		size=${size%% *}
		[ "$size" -le "$max" ] || die 15 "$full is larger than $max bytes"
		dd if="$t" iflag=nofollow,count_bytes count=$((max + 1)) bs=64K status=none
		;;
	inspect)
		at inspect
		inspect
		;;
	converge)
		at inspect
		inspect "$size"
		if insync; then
			left=lost
			skip || die 1 "could not read past the content of $full"
			left=0
			say did insync
		else
			at write
			stage
			checkstaged
			commit
			say did written
		fi
		;;
	removeown)
		at inspect
		inspect
		if [ "$kind" != missing ] && [ "${tst%% *}" = "$uid" ]; then
			at remove
			remove
			say did removed
		fi
		;;
	esac
}

# record works the record under way: alone, directly; in a batch in a
# subshell of its own, so that a refusal ends only that record, and
# answers its end.
record() {
	if [ "$form" = single ]; then
		one
		return 0
	fi
	set +e
	(
		set -e
		one
	) 2>&1
	c=$?
	set -e
	printf ':%s end %s\n' "$i" "$c"
	[ "$c" != 16 ] || broken=1
	[ "$c" = 0 ] || failed=$c
}

# refuse answers a record that cannot be worked at all with code $1 and
# message $2 (alone, the script exits).
refuse() {
	[ "$form" != single ] || die "$@"
	printf ':%s err %s %s\n:%s end %s\n' "$i" "$1" "$2" "$i" "$1"
	failed=$1
	[ "$broken" = 1 ] || skip || broken=1
}

# grouplen sets k to the number of records, from the first on, that one
# run as their owner works: files in the home of one owner with one
# group. A reap is worked alone (root kills first).
grouplen() {
	k=1
	[ "$1" != reap ] || return 0
	shift 8
	while [ $# -ge 8 ] && [ "${3%%:*}" = "$owner" ] && [ "$4" = "$group" ] && [ "$1" != reap ]; do
		case $2 in '~/'*) ;; *) break ;; esac
		k=$((k + 1))
		shift 8
	done
}

# work works the first record of "$@", or the run of records starting
# there that one run as their owner works, and sets k to how many.
work() {
	k=1
	case ${op#sweep+} in
	stage | commit | write | abort | reap | remove | inspect | sweep | user | converge | removeown) ;;
	read) [ "$form" = single ] || {
		refuse 2 "read works one file alone"
		return 0
	} ;;
	*)
		refuse 2 "unknown operation $op"
		return 0
		;;
	esac
	if [ "$broken" = 1 ] && reads; then
		refuse 1 "not attempted: the content of an earlier file was not read to its end"
		return 0
	fi
	acct=''
	case $owner in *:*) acct=${owner#*:} owner=${owner%%:*} ;; esac
	if [ -n "$as" ]; then
		# Run again as the owner: root looked the account up.
		account "$as"
		record
		return 0
	fi
	if [ -n "$acct" ]; then
		# The account a stage answered.
		account "$acct"
	else
		c=0
		lookup || c=$?
		case $c in
		0) ;;
		11)
			refuse 11 "no such user \"$owner\""
			return 0
			;;
		*)
			refuse 12 "no such group \"$group\""
			return 0
			;;
		esac
		if [ "$op" = user ]; then
			say user "$uid:$gid:$home"
			[ "$form" = single ] || printf ':%s end 0\n' "$i"
			return 0
		fi
	fi
	case $path in '~/'*) [ -n "${home%/}" ] && asowner "$@" && return 0 ;; esac
	record
}

# account sets uid, gid and home from UID:GID:HOME.
account() {
	uid=${1%%:*} gid=${1#*:}
	home=${gid#*:} gid=${gid%%:*}
}

# asowner runs the script again as the owner for the run of records in
# the owner's home that starts at the first of "$@"; a reap is killed as
# root first.
asowner() {
	grouplen "$@"
	if [ "$op" = reap ]; then
		if [ "$form" = single ]; then
			reap
		else
			set +e
			(
				set -e
				reap
			) 2>&1
			c=$?
			set -e
			if [ "$c" != 0 ]; then
				printf ':%s end %s\n' "$i" "$c"
				failed=$c
				return 0
			fi
		fi
	fi
	if [ "$form" = single ]; then
		exec chroot --userspec="$uid:$gid" / sh -c 'eval "$1"' pcmkeys "$self" \
			single "$root" "$uid:$gid:$home" "$i" 1 "$@"
	fi
	set +e
	chroot --userspec="$uid:$gid" / sh -c 'eval "$1"' pcmkeys "$self" \
		"$form" "$root" "$uid:$gid:$home" "$i" "$k" "$@" 2>&1
	c=$?
	set -e
	# The run exits 0, or in a chain with the code that stopped it; 16 or
	# anything else leaves the content of later records unread.
	case $c in
	0) ;;
	16) broken=1 failed=$c ;;
	*)
		failed=$c
		[ "$form" = chain ] && [ "$c" -le 16 ] || broken=1
		;;
	esac
	return 0
}

while [ $# -ge 8 ] && [ "$count" != 0 ]; do
	op=$1 path=$2 owner=$3 group=$4 mode=$5 sum=$6 size=$7 tmp=$8
	work "$@"
	shift $((8 * k))
	i=$((i + k))
	[ -z "$count" ] || count=$((count - k))
	[ "$form" != chain ] || [ "$failed" = 0 ] || break
done
[ "$form" != single ] || exit 0
[ "$form" != chain ] || exit "$failed"
[ "$broken" = 0 ] || exit 16
exit 0
