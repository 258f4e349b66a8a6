# The remote half of pcmkeys's write protocol, for hosts reached over SSH.
# POSIX sh and coreutils only (getent, stat, mkdir, chown, chmod, dd, mv, rm,
# sync, sha256sum, chroot; grep in reap). Key material arrives on stdin, never in
# arguments or the environment. Few processes are started: a write costs
# about nine, so that a fan-out to hundreds of hosts stays near the cost of
# the SSH logins themselves.
#
# Usage: sh -c 'eval "$1"' pcmkeys SCRIPT OP ROOT PATH OWNER GROUP MODE SHA256 [TMP [AS]]
#   SCRIPT  this script's text, so that it can run itself as OWNER
#   OP      stage | commit | write | abort | reap | remove | inspect | read |
#           sweep | user
#   ROOT    prefix of every path ("" for /)
#   PATH    absolute, or ~/REL for OWNER's home (validated by the caller)
#   MODE    octal permission bits of the file, such as 600
#   TMP     stage, write: a random suffix for the temporary file;
#           commit: the temporary file stage named; abort, reap: either
#   AS      UID:GID:HOME, only when the script runs itself as OWNER
# Exit codes: 0 done; 10 unsafe target; 11 no such user; 12 no such group;
# 13 verification failed; 14 home directory missing; 15 file too large;
# others: failure.
# No file is read or hashed beyond max bytes (the largest file pcmkeys
# writes, remote.MaxRead in Go; a test keeps them equal), so a huge or sparse
# file planted at a target costs nothing.
# Inside a home directory (PATH ~/REL) root only looks OWNER and GROUP up
# (and kills, for reap); then the script runs itself again as OWNER (chroot
# --userspec, with AS) for everything else: every test, stat, listing,
# write, rename, fsync and removal on a path in the home. The owner's links
# there lead only where the owner may go anyway: a link swapped in
# mid-operation cannot make root open, list, fsync, stat or remove anything.
# shellcheck disable=SC2088,SC2086,SC2015 # literal ~/ match; splitting on IFS with set -f; A && B || die is intended
set -eu
set -f
umask 077
# sudo may keep the login's PATH, which often lacks chroot's /usr/sbin.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}
export PATH
die() { c=$1; shift; printf '%s\n' "$*" >&2; exit "$c"; }
self=$1
shift
op=$1 root=$2 path=$3 owner=$4 group=$5 mode=$6 sum=$7 tmp=${8-} asowner=${9-}
r=${root%/}
max=16777216
nl='
'
ifs=' 	
'

if [ -n "$asowner" ]; then
	# Run again as the owner: root looked the account up.
	IFS=:
	set -- $asowner
	IFS=$ifs
	uid=$1 gid=$2 home=$3
else
	# name:password:uid:gid:gecos:home:shell, split without a subprocess.
	pw=$(getent passwd -- "$owner") || die 11 "no such user \"$owner\""
	IFS=:
	set -- $pw
	IFS=$ifs
	uid=$3 gid=$4 home=$6
	if [ "$op" = user ]; then
		printf '%s:%s:%s\n' "$uid" "$gid" "$home"
		exit 0
	fi
	if [ -n "$group" ]; then
		gr=$(getent group -- "$group") || die 12 "no such group \"$group\""
		IFS=:
		set -- $gr
		IFS=$ifs
		gid=$3
	fi
fi

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
# down, its owner). Only then, with create=1, it makes the missing ones;
# with create=0 it returns 1 if one is missing. Lists are split on
# newlines only, so a component may hold spaces.
walk() {
	[ -d "${r:-/}" ] || die 1 "the host's root directory $r does not exist"
	cur='' list="${r:-/}" shown=/ owned=0 missing=''
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
				list="$list
$r$cur"
				shown="$shown
$cur"
				owned="$owned
$h"
				continue
			fi
			if [ -n "$home" ] && { [ "$h" = 0 ] || [ "$cur" = "$home" ]; }; then
				die 14 "home directory $home of $owner does not exist"
			fi
		fi
		missing="$missing$nl$c"
	done
	# One stat for every existing directory: uid and mode, line by line.
	IFS='
'
	st=$(stat -c '%u %a' -- $list)
	set -- $shown
	for o in $owned; do
		line=${st%%
*}
		st=${st#*
}
		u=${line% *} a=${line#* }
		if [ "$u" != 0 ] && ! { [ "$o" = 1 ] && [ "$u" = "$uid" ]; }; then
			die 10 "directory $1 is owned by uid $u, not root"
		fi
		[ $((0$a & 022)) = 0 ] || die 10 "directory $1 is writable by group or other (mode $a)"
		shift
	done
	# In a home (walked as its owner), the owner must be let into every
	# directory, and to write, into the deepest that exists.
	set -- $list
	for o in $owned; do
		[ "$o" = 0 ] || [ -x "$1" ] || die 1 "$owner may not enter directory ${1#"$r"}"
		shift
	done
	cur=${shown##*
}
	if [ "$create" = 1 ] && [ "$inhome" = 1 ] && [ "${owned##*
}" = 1 ]; then
		[ -w "$r$cur" ] || die 1 "$owner may not write in directory $cur"
	fi
	[ -n "$missing" ] || { IFS=$ifs; return 0; }
	[ "$create" = 1 ] || { IFS=$ifs; return 1; }
	[ "$cur" != / ] || cur=''
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
	return 0
}

target() {
	t=$r$full
	[ ! -L "$t" ] || die 10 "$full is a symbolic link"
	if [ -e "$t" ] && [ ! -f "$t" ]; then die 10 "$full is not a regular file"; fi
	if [ -f "$t" ]; then
		u=$(stat -c %u -- "$t")
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
	# Any failure from here on (a full disk) removes the partial temp file.
	if ! { dd of="$tmp" conv=excl,fsync oflag=nofollow status=none &&
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

if [ "$op" = reap ]; then
	# Kill what is left of the stale command as root, then remove its
	# temporary file as abort does.
	reap
	op=abort
fi
if [ "$inhome" = 1 ] && [ -z "$asowner" ]; then
	exec chroot --userspec="$uid:$gid" / sh -c 'eval "$1"' pcmkeys "$self" \
		"$op" "$root" "$path" "$owner" "$group" "$mode" "$sum" "$tmp" "$uid:$gid:$home"
fi

case $op in
stage)
	stage
	checkstaged
	printf '%s\n' "$tmp"
	;;
write)
	stage
	checkstaged
	commit
	;;
commit)
	create=0
	walk || die 1 "the directory of $full is gone"
	commit
	;;
abort)
	create=0
	walk || exit 0
	case $tmp in
	/*) ;;
	*[!0-9a-f]* | '') die 2 "bad temporary file suffix" ;;
	*) tmp=$r$dir/.$base.pcmkeys-$tmp ;;
	esac
	ours
	rm -f -- "$tmp"
	;;
remove)
	create=0
	walk || exit 0
	t=$r$full
	if [ -L "$t" ] || [ -f "$t" ]; then
		rm -f -- "$t"
		sync -- "$r$dir"
	elif [ -e "$t" ]; then
		die 10 "$full is not a regular file"
	fi
	;;
sweep)
	create=0
	walk || { echo 0; exit 0; }
	sweep
	echo "$n"
	;;
read)
	create=0
	walk || die 1 "$full does not exist"
	t=$r$full
	[ ! -L "$t" ] || die 10 "$full is a symbolic link"
	[ -f "$t" ] || die 1 "$full is not a regular file or does not exist"
	size=$(stat -c %s -- "$t")
	[ "$size" -le "$max" ] || die 15 "$full is larger than $max bytes"
	dd if="$t" iflag=nofollow,count_bytes count=$((max + 1)) bs=64K status=none
	;;
inspect)
	# The full path, then what is there (without following a link): its
	# kind, uid, gid, mode with the special bits, size, owner and group
	# names, and for a regular file no larger than max its SHA-256 ("-"
	# for none).
	printf '%s\n' "$full"
	create=0
	walk || {
		echo missing
		exit 0
	}
	t=$r$full
	if [ ! -L "$t" ] && [ ! -e "$t" ]; then
		echo missing
		exit 0
	fi
	st=$(stat -c '%u %g %a %s %U %G' -- "$t")
	# A uid that several accounts share is named as the owner asked about.
	set -- $st
	[ "$1" != "$uid" ] || st="$1 $2 $3 $4 $owner $6"
	if [ -L "$t" ]; then
		echo symlink $st
	elif [ ! -f "$t" ]; then
		echo other $st
	else
		set -- $st
		s=-
		[ "$4" -gt "$max" ] || s=$(hash "$t")
		echo file $st "$s"
	fi
	;;
*) die 2 "unknown operation $op" ;;
esac
