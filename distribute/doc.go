// Package distribute delivers credential files to hosts and inspects them
// there, with one write protocol for every transport.
//
// # The write protocol
//
// Every file reaches its target the same way (see [Host.Stage] and
// [Staged.Commit]):
//
//  1. The path is validated: absolute, clean, no "..". A path starting with
//     "~/" lies in the home directory of the file's owner on that host.
//  2. The directories are walked from the host's root one component at a
//     time without following links (openat with O_NOFOLLOW). A symlinked or
//     missing directory, or one writable by anyone but root (and, inside a
//     home directory, its owner), is refused. Missing directories are
//     created: the file's own directory 0750 root:GROUP for server files
//     (so /etc/pacemaker becomes 0750 root:haclient), 0700 OWNER:GROUP
//     inside a home directory, 0755 otherwise. Inside a home directory
//     the owner must also be let into every directory from the home
//     down, and write in the deepest that exists: a key its owner cannot
//     reach is refused, not written.
//  3. An existing target that is a symlink or not a regular file is refused.
//  4. A temporary file is created beside the target with O_EXCL, mode 0600
//     from the first moment, never following links; its owner and group are
//     set on the open file; the content is written and fsynced.
//  5. On commit it is renamed over the target and the directory is fsynced.
//  6. The target is opened again without following links, and its owner,
//     group, mode and SHA-256 are compared with what was meant.
//
// No reader ever sees partial content, a looser mode or another owner at
// the target path: the rename is the only moment the target changes.
//
// Inside a home directory the owner may replace any directory by a link
// at any moment, so root never follows a path there: [Local] works only on
// descriptors opened without following links (openat, fstatat, unlinkat,
// fsync on the directory's descriptor), and over SSH root only looks the
// owner up and then runs the rest of the operation as the owner (every
// stat, listing, write, rename, fsync and removal), whose links lead only
// where the owner may go anyway. [Host.Inspect] judges a file there as its
// owner would see it: one the owner may not read is not hashed, on either
// transport.
//
// A rename is atomic only within one local filesystem; targets on NFS are
// not supported.
//
// # Batches
//
// A host that is a [Batcher] ([SSHHost]) works many files in one round
// trip: [Apply] (look, write, converge, remove, then a command), [StageAll],
// [CommitAll], [CommitAllThen] and [AbortAll] send one session of the remote
// script with a record per file, and read an answer per record. Nothing
// of the protocol above is folded away: each record is walked, staged,
// written, committed and verified as one file would be, with the same
// refusals. Only the carriers change: one session and one script instead
// of one per step, each owner and group looked up once per batch, and a
// commit reusing its stage's lookups. The records of one owner's home run
// in one process as that owner, which reads only its own records'
// contents (root feeds them through a pipe) and cannot answer for
// another's; root goes past such a run only when every one of its records
// ended well. A command (a [Run] job) and a password ([SetPass]: chpasswd
// as root, the password on a pipe from the batch's input, never in a
// command line) run as root, and only when every job before them
// succeeded; after a commit they are a chain ([CommitAllThen]). Other
// hosts ([Local]) work the same jobs one at a time; the contract suite
// runs through both paths.
//
// # Hosts
//
// Package distribute/hosttest is the contract every [Host] meets, case by
// case; this package's tests run it against [Local] and [SSHHost]. What a
// file's state means for its policy is decided in one place, [Compare].
//
// [Local] writes on this machine (with renameio). A host may have a root
// prefix under which all its paths live: a staging image or a test lab. For
// such a host, user and group names are looked up in ROOT/etc/passwd and
// ROOT/etc/group when those exist.
//
// When pcmkeys runs as a user other than root (a demo under a root prefix),
// directories owned by that user are trusted like root's.
package distribute
