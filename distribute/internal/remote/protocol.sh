# The write protocol's steps, for script.sh (see its top): the checks of a
# target's directories and the target itself, the staged write, the
# rename, the verification, inspect, remove and abort.

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
