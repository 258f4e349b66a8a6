# The remote half of pcmkeys's write protocol, for hosts reached over SSH.
# POSIX sh and coreutils only (id, getent, stat, mkdir, chown, chmod, dd, mv,
# rm, sync, sha256sum, od, tr, cut, chroot). Key material arrives on stdin,
# never in arguments or the environment.
#
# Usage: sh -c SCRIPT pcmkeys OP ROOT PATH OWNER GROUP MODE SHA256 [TMP]
#   OP      stage | commit | write | abort | remove | inspect | user
#   ROOT    prefix of every path ("" for /)
#   PATH    absolute, or ~/REL for OWNER's home (validated by the caller)
#   MODE    octal permission bits of the file, such as 600
# Exit codes: 0 done; 10 unsafe target; 11 no such user; 12 no such group;
# 13 verification failed; 14 home directory missing; others: failure.
# Inside a home directory every file operation runs as its owner (chroot
# --userspec), so the owner cannot trick root into writing elsewhere.
# shellcheck disable=SC2088,SC2086,SC2015 # literal ~/ match; splitting on IFS=/ with set -f; A && B || die is intended
set -eu
set -f
umask 077
die() { c=$1; shift; printf '%s\n' "$*" >&2; exit "$c"; }
op=$1 root=$2 path=$3 owner=$4 group=$5 mode=$6 sum=$7 tmp=${8-}
r=${root%/}

uid=$(id -u -- "$owner" 2>/dev/null) || die 11 "no such user \"$owner\""
if [ "$op" = user ]; then
	getent passwd -- "$owner" | cut -d: -f3,4,6
	exit 0
fi
if [ -n "$group" ]; then
	gid=$(getent group -- "$group" | cut -d: -f3) || true
	[ -n "$gid" ] || die 12 "no such group \"$group\""
else
	gid=$(id -g -- "$owner")
fi

home=
case $path in
'~/'*)
	home=$(getent passwd -- "$owner" | cut -d: -f6)
	case $home in /*) ;; *) die 10 "home directory of $owner is not an absolute path" ;; esac
	case $home/ in */../* | */./* | *//*) die 10 "home directory of $owner is not a clean path" ;; esac
	home=${home%/}
	full=$home/${path#'~/'}
	;;
*) full=$path ;;
esac
dir=${full%/*}
base=${full##*/}
inhome=0
if [ -n "$home" ]; then
	case $dir/ in "$home"/*) inhome=1 ;; esac
fi

# as runs a command as the file's owner inside a home directory, as root
# elsewhere.
as() {
	if [ "$inhome" = 1 ] && [ "$(id -u)" != "$uid" ]; then
		chroot --userspec="$uid:$gid" / "$@"
	else
		"$@"
	fi
}

check() { # PATH-ON-HOST SHOWN-PATH IN-HOME
	[ ! -L "$1" ] || die 10 "directory $2 is a symbolic link"
	[ -d "$1" ] || die 10 "$2 is not a directory"
	st=$(stat -c '%u %a' -- "$1")
	u=${st% *} a=${st#* }
	if [ "$u" != 0 ] && ! { [ "$3" = 1 ] && [ "$u" = "$uid" ]; }; then
		die 10 "directory $2 is owned by uid $u, not root"
	fi
	[ $((0$a & 022)) = 0 ] || die 10 "directory $2 is writable by group or other (mode $a)"
}

# walk checks every directory from the root down; with create=1 it makes the
# missing ones. It returns 1 if one is missing and create=0.
walk() {
	[ -d "${r:-/}" ] || die 1 "the host's root directory $r does not exist"
	check "${r:-/}" / 0
	cur=
	old_ifs=$IFS
	IFS=/
	set -- ${dir#/}
	IFS=$old_ifs
	n=$# i=0
	for c; do
		i=$((i + 1))
		cur=$cur/$c
		h=0
		if [ -n "$home" ]; then
			case $cur/ in "$home"/?*) h=1 ;; esac
		fi
		if [ ! -e "$r$cur" ] && [ ! -L "$r$cur" ]; then
			if [ -n "$home" ] && [ "$h" = 0 ]; then
				die 14 "home directory $home of $owner does not exist"
			fi
			[ "$create" = 1 ] || return 1
			if [ "$h" = 1 ]; then
				as mkdir -m 700 -- "$r$cur"
			elif [ "$i" = "$n" ]; then
				mkdir -m 750 -- "$r$cur"
				chown -h -- "0:$gid" "$r$cur"
				chmod 750 -- "$r$cur"
			else
				mkdir -m 755 -- "$r$cur"
			fi
		fi
		if [ -n "$home" ] && [ "$cur" = "$home" ]; then h=1; fi
		check "$r$cur" "$cur" "$h"
	done
	return 0
}

target() {
	t=$r$full
	[ ! -L "$t" ] || die 10 "$full is a symbolic link"
	if [ -e "$t" ] && [ ! -f "$t" ]; then die 10 "$full is not a regular file"; fi
}

stage() {
	create=1
	walk
	target
	tmp=$r$dir/.$base.pcmkeys-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	as dd of="$tmp" conv=excl,fsync oflag=nofollow status=none
	if [ "$inhome" = 0 ]; then chown -h -- "$uid:$gid" "$tmp"; fi
	if [ "$mode" != 600 ]; then as chmod -- "$mode" "$tmp"; fi
	got=$(as sha256sum -- "$tmp" | cut -d' ' -f1)
	if [ "$got" != "$sum" ]; then
		as rm -f -- "$tmp"
		die 13 "$full: the staged content's SHA-256 differs from what was sent"
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
	as mv -fT -- "$tmp" "$t"
	sync -- "$r$dir"
	verify
}

verify() {
	[ ! -L "$t" ] && [ -f "$t" ] || die 13 "$full is not a regular file after the rename"
	st=$(stat -c '%u %g %a' -- "$t")
	[ "$st" = "$uid $gid $mode" ] || die 13 "$full is $st (uid gid mode), want $uid $gid $mode"
	got=$(as sha256sum -- "$t" | cut -d' ' -f1)
	[ "$got" = "$sum" ] || die 13 "$full: its SHA-256 differs from what was written"
}

case $op in
stage)
	stage
	printf '%s\n' "$tmp"
	;;
write)
	stage
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
	ours
	as rm -f -- "$tmp"
	;;
remove)
	create=0
	walk || exit 0
	t=$r$full
	if [ -L "$t" ] || [ -f "$t" ]; then
		as rm -f -- "$t"
		sync -- "$r$dir"
	elif [ -e "$t" ]; then
		die 10 "$full is not a regular file"
	fi
	;;
inspect)
	create=0
	walk || { echo missing; exit 0; }
	t=$r$full
	if [ -L "$t" ]; then
		echo symlink
	elif [ ! -e "$t" ]; then
		echo missing
	elif [ ! -f "$t" ]; then
		echo other "$(stat -c '%F' -- "$t" | tr ' ' _)"
	else
		echo file "$(stat -c '%u %g %a %s %U %G' -- "$t")" "$(as sha256sum -- "$t" | cut -d' ' -f1)"
	fi
	;;
*) die 2 "unknown operation $op" ;;
esac
