package distribute

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pcmkeys/pcmkeys/distribute/internal/escape"
)

// File is one file to deliver.
type File struct {
	// Path is absolute on the host, or "~/..." for a path in Owner's home.
	Path string
	// Content is the exact bytes to write. It is key material: it is never
	// logged, and no error includes it.
	Content []byte
	// Owner and Group are names resolved on the host. An empty Group means
	// Owner's primary group.
	Owner string
	Group string
	Mode  fs.FileMode
}

// SHA256 returns the hex SHA-256 of the content, used to verify a write.
func (f File) SHA256() string { return hashHex(f.Content) }

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Account is a user as a host knows it.
type Account struct {
	Name string
	UID  int
	GID  int
	Home string
}

// FileState is what [Host.Inspect] found at a path. It carries the content's
// hash, never the content.
type FileState struct {
	Path    string      `json:"path"`
	Exists  bool        `json:"exists"`
	Regular bool        `json:"regular"`
	Symlink bool        `json:"symlink,omitempty"`
	Owner   string      `json:"owner,omitempty"`
	Group   string      `json:"group,omitempty"`
	UID     int         `json:"uid"`
	GID     int         `json:"gid"`
	Mode    fs.FileMode `json:"mode"`
	Size    int64       `json:"size"`
	// SHA256 is empty for anything but a regular file, and for a file
	// that could not be hashed: one larger than the largest legal file
	// (TooLarge) or, in a home directory over SSH, one its owner cannot
	// read. An empty hash never matches a file's content.
	SHA256 string `json:"sha256,omitempty"`
	// TooLarge says the file is larger than any file pcmkeys writes
	// (16 MiB): it was not read, so it is never in sync.
	TooLarge bool `json:"too_large,omitempty"`
}

// Host is a machine pcmkeys writes to.
type Host interface {
	// Name is the host's name in the config.
	Name() string
	// LookupUser returns the account named name, or an error wrapping
	// [ErrUnknownUser].
	LookupUser(ctx context.Context, name string) (Account, error)
	// Stage validates the target and writes the file's content beside it,
	// without touching the target yet.
	Stage(ctx context.Context, f File) (Staged, error)
	// Remove deletes a file (never following a link); a missing file is not
	// an error.
	Remove(ctx context.Context, path, owner string) error
	// Inspect reports what is at path without following links.
	Inspect(ctx context.Context, path, owner string) (FileState, error)
	// Sweep removes the temporary files that an interrupted write of path
	// left beside it, and returns how many. Callers hold the cluster lock,
	// so no other run is writing there.
	Sweep(ctx context.Context, path, owner string) (int, error)
	// Read returns a file's content, never following links: for import,
	// which adopts keys already on a host. The content is key material.
	Read(ctx context.Context, path, owner string) ([]byte, error)
	// Exec runs a shell command on the host as root (a restart, a version
	// query) and returns its output. It never carries key material.
	Exec(ctx context.Context, command string) (string, error)
	// Close releases the host's connection.
	Close() error
}

// Staged is a file written beside its target, waiting to replace it.
type Staged interface {
	// Commit renames the staged file over the target, fsyncs the directory
	// and verifies the result.
	Commit(ctx context.Context) error
	// Abort removes the staged file. It is safe after Commit.
	Abort(ctx context.Context) error
}

// fileWriter is a host that can stage and commit in one step.
type fileWriter interface {
	WriteFile(ctx context.Context, f File) error
}

// Write stages f on h and commits it at once.
func Write(ctx context.Context, h Host, f File) error {
	if w, ok := h.(fileWriter); ok {
		return w.WriteFile(ctx, f)
	}
	s, err := h.Stage(ctx, f)
	if err != nil {
		return err
	}
	if err := s.Commit(ctx); err != nil {
		return errors.Join(err, s.Abort(ctx))
	}
	return nil
}

// Errors a caller can test for.
var (
	ErrUnknownUser  = errors.New("no such user")
	ErrUnknownGroup = errors.New("no such group")
	ErrUnsafe       = errors.New("refusing an unsafe target")
	ErrVerify       = errors.New("verification after write failed")
	ErrNoExec       = errors.New("commands cannot run on a host under a root prefix")
)

// ErrTimeout is a host that gave no answer within ssh.command_timeout (or
// a cleanup's own bound). The connection it hung on was closed, and every
// later operation on that [SSHHost] fails at once with an error wrapping
// ErrTimeout. It also matches [ErrUnreachable] (errors.Is): a host that
// does not answer in time is one pcmkeys could not reach. Test ErrTimeout
// first to report such a host as "timed out".
var ErrTimeout error = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string { return "timed out" }

// Is makes ErrTimeout match ErrUnreachable too.
func (timeoutError) Is(target error) bool { return target == ErrUnreachable }

// PathError is a failure at one path on one host.
type PathError struct {
	Host string
	Op   string
	Path string
	Err  error
}

// Error escapes what a host may have said (see internal/escape).
func (e *PathError) Error() string {
	return escape.String(fmt.Sprintf("%s %s on %s: %v", e.Op, e.Path, e.Host, e.Err))
}

func (e *PathError) Unwrap() error { return e.Err }
