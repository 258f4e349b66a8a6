package rotate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pcmkeys/pcmkeys/keystore"
)

// withLock runs fn holding the cluster's lock, unless this is a dry run.
func (e *Env) withLock(ctx context.Context, action string, fn func() error) error {
	return e.WithLock(ctx, action, func(string) error { return fn() })
}

// WithLock runs fn holding the cluster's lock in e.Store (unless this is
// a dry run), as every workflow does: for work on the store outside them
// (a restore of the file store). fn gets the lock's holder, as the store
// records it. With e.LockWait it waits for another run's lock; the lock
// of a run on this machine that died is broken; the lease is renewed
// while fn runs and released after.
func (e *Env) WithLock(ctx context.Context, action string, fn func(holder string) error) error {
	if e.DryRun {
		return fn("")
	}
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s@%s pid %d (%s)", e.Operator, host, os.Getpid(), action)
	lease, err := e.Store.Lock(ctx, owner, keystore.DefaultLockTTL)
	var le *keystore.LockedError
	for deadline := time.Now().Add(e.LockWait); errors.As(err, &le) && !deadHereHolder(le.Holder, host) && time.Now().Before(deadline); {
		// --wait: another run holds it; wait for it to end (a crashed
		// run's lease expires within a minute).
		e.log().Info("waiting for the cluster's lock", "holder", le.Holder)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		lease, err = e.Store.Lock(ctx, owner, keystore.DefaultLockTTL)
	}
	if errors.As(err, &le) && deadHereHolder(le.Holder, host) {
		// A run on this machine that no longer exists: waiting for its
		// lease to expire would only delay, say, a revocation.
		e.log().Warn("breaking the lock of a run that died", "holder", le.Holder)
		if err = e.Store.BreakLock(ctx, le.Holder); err == nil {
			lease, err = e.Store.Lock(ctx, owner, keystore.DefaultLockTTL)
		}
	}
	if err != nil {
		return err
	}
	// Keep the lease while fn runs; a run that dies stops renewing it.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(keystore.DefaultLockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				l, err := e.Store.Renew(context.WithoutCancel(ctx), lease, keystore.DefaultLockTTL)
				if err == nil {
					lease = l // read by the deferred Unlock only after done
				} else {
					e.log().Error("renew the cluster lock", "err", err)
				}
			}
		}
	}()
	defer func() {
		close(stop)
		<-done
		if err := e.Store.Unlock(context.WithoutCancel(ctx), lease); err != nil {
			e.log().Error("release the cluster lock", "err", err)
		}
	}()
	return fn(owner)
}

var holderRE = regexp.MustCompile(`^.*@(.+) pid (\d+) \(`)

// deadHereHolder reports whether a lock holder names a process on this
// machine that no longer exists.
func deadHereHolder(holder, host string) bool {
	m := holderRE.FindStringSubmatch(holder)
	if m == nil || m[1] != host {
		return false
	}
	pid, err := strconv.Atoi(m[2])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}
