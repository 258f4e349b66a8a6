# The record loop, for script.sh (see its top): each record of the command
# line worked on its own, as root or, for a run of files in one owner's
# home, as that owner, and answered.

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
		[ -n "$as" ] || say account "$acct"
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
# group (a reap is worked alone: root kills first), and total to the
# length of their contents.
grouplen() {
	k=1 total=0
	[ "$1" != reap ] || return 0
	while :; do
		case $1 in *stage | *write | *converge) [ "$7" = - ] || total=$((total + $7)) ;; esac
		shift 8
		[ $# -ge 8 ] && [ "${3%%:*}" = "$owner" ] && [ "$4" = "$group" ] && [ "$1" != reap ] || break
		case $2 in '~/'*) ;; *) break ;; esac
		k=$((k + 1))
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
	run)
		run
		return 0
		;;
	setpass)
		setpass
		return 0
		;;
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

# run runs the command PATH as root once every record before it
# succeeded, and answers its output line by line and its exit code. Its
# stdin is /dev/null, as a command run alone has none: the contents of
# later records (keys, a password) are not there for it.
run() {
	if [ "$form" = single ] || [ -n "$as" ]; then
		refuse 2 "run works in a batch, as root"
		return 0
	fi
	if [ "$failed" != 0 ]; then
		refuse 1 "not run: a job before it failed"
		return 0
	fi
	set +e
	out=$(sh -c "$path" 2>&1 </dev/null)
	c=$?
	set -e
	ran
}

# ran answers out, a command's output, line by line, and c, its exit code.
ran() {
	while [ -n "$out" ]; do
		printf ':%s out %s\n' "$i" "${out%%"$nl"*}"
		case $out in *"$nl"*) out=${out#*"$nl"} ;; *) out='' ;; esac
	done
	printf ':%s end %s\n' "$i" "$c"
	[ "$c" = 0 ] || failed=$c
}

# setpass sets OWNER's password with chpasswd, as root, once every record
# before it succeeded, and answers as run does. The record's content is
# the password and a newline: root's shell reads it from stdin as a line
# (a short one, cut before its newline, is refused: nothing is set), and
# printf, a builtin, hands it to chpasswd through a pipe; it is never in
# an argument, the environment, a file or an answer.
setpass() {
	[ "$form" != single ] || die 2 "setpass works in a batch"
	if [ -n "$as" ]; then
		passrefuse 2 "setpass works as root"
		return 0
	fi
	if [ "$failed" != 0 ]; then
		passrefuse 1 "not run: a job before it failed"
		return 0
	fi
	case $owner in
	'' | [!A-Za-z_]* | *[!A-Za-z0-9_.-]*)
		passrefuse 2 "setpass: a bad user name"
		return 0
		;;
	esac
	case $size in
	'' | 0 | 1 | *[!0-9]*)
		passrefuse 2 "setpass: no password"
		return 0
		;;
	esac
	pass=''
	if ! IFS= read -r pass || [ "$(LC_ALL=C && echo $((${#pass} + 1)))" != "$size" ]; then
		pass=''
		broken=1
		printf ':%s err 16 %s\n:%s end 16\n' "$i" "the password was not read whole: not set" "$i"
		failed=16
		return 0
	fi
	set +e
	out=$( (printf '%s:%s\n' "$owner" "$pass" | chpasswd) 2>&1 </dev/null)
	c=$?
	set -e
	pass=''
	ran
}

# passrefuse refuses a setpass as refuse does a record, reading past its
# password.
passrefuse() {
	printf ':%s err %s %s\n:%s end %s\n' "$i" "$1" "$2" "$i" "$1"
	failed=$1
	[ "$broken" = 1 ] || dd of=/dev/null bs=64K iflag=fullblock,count_bytes count="$size" status=none || broken=1
}

# asowner1 runs the script as the owner for the k records of "$@".
asowner1() {
	chroot --userspec="$uid:$gid" / sh -c 'eval "$1"' pcmkeys "$self" \
		"$form" "$root" "$uid:$gid:$home" "$i" "$k" "$@" 2>&1
}

# accounts answers the account of each stage among the k records of "$@".
accounts() {
	j=$i
	while [ "$j" -lt $((i + k)) ]; do
		[ "$1" != stage ] || printf ':%s account %s\n' "$j" "$uid:$gid:$home"
		j=$((j + 1))
		shift 8
	done
}

# relay passes on the lines of out, an owner's run of records i to i+k-1:
# its commands' stderr and its answers for those records, but an account,
# and nothing of a record after its end (the Go side reads no more of
# it); it counts in done the records that ended well, as the Go side
# reads them: an end 0, the first, with no err before it.
relay() {
	done=0 ended=' '
	while [ -n "$out" ]; do
		line=${out%%"$nl"*}
		case $out in *"$nl"*) out=${out#*"$nl"} ;; *) out='' ;; esac
		case $line in
		:*)
			j=${line#:}
			j=${j%% *}
			case $j in '' | *[!0-9]* | 0?*) continue ;; esac
			[ "$j" -ge "$i" ] && [ "$j" -lt $((i + k)) ] || continue
			case $ended in *" $j. "*) continue ;; esac
			case ${line#:"$j" } in
			account*) continue ;;
			err | 'err '*) ended="$ended$j! " ;;
			end | 'end '*)
				case $ended in *" $j! "*) ;; *) [ "${line#:"$j" }" != 'end 0' ] || done=$((done + 1)) ;; esac
				ended="$ended$j. "
				;;
			esac
			;;
		esac
		printf '%s\n' "$line"
	done
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
	# The account root found, for a commit of what is staged not to look
	# it up again: said by root, never by the owner's run.
	accounts "$@"
	# The owner's run answers through root, which passes on only what it
	# says of its own records: a process of the owner's (whoever controls
	# the account controls that run) can neither answer for another
	# record of the batch nor give an account.
	# It reads its records' contents, and nothing else of stdin (later
	# records hold other users' keys), from a pipe root fills.
	set +e
	out=$(
		if [ "$total" = 0 ] || [ "$broken" = 1 ]; then
			asowner1 "$@" </dev/null
		else
			dd bs=64K iflag=fullblock,count_bytes count="$total" status=none | asowner1 "$@"
		fi
	)
	c=$?
	set -e
	relay
	# Root goes past the run only as past records that all ended well,
	# whatever its exit says: a chain goes on, a command or a password
	# after it in a batch is worked (a failed record of its own ends no
	# other record: the run exits 0 in a batch).
	[ "$c" != 0 ] || [ "$done" = "$k" ] || failed=1
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
