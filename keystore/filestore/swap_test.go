package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/sys/unix"
)

// TestLockFollowsTheSwap: a process waiting for the store's lock while a
// restore swaps the directory holds, once it gets it, the new directory's
// lock, not the old one's that nobody else will ever take again.
func TestLockFollowsTheSwap(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	data, _ := f.backup(t)
	lease, _ := f.s.Lock(ctx, "restorer", time.Minute)
	second, err := Open(f.dir, f.dir+".agekey", Options{})
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan error, 1)
	waiting := make(chan struct{})
	restored := make(chan error, 1)
	go func() {
		restored <- f.s.withLock(ctx, true, func() error {
			go func() {
				entered <- second.withLock(ctx, true, func() error {
					// The new lock file must be the one held now.
					fd, err := unix.Open(filepath.Join(f.dir, "lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
					if err != nil {
						return err
					}
					defer unix.Close(fd)
					if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
						return fmt.Errorf("the lock at the path is free while a process holds the store's lock (flock: %v)", err)
					}
					return nil
				})
			}()
			close(waiting)
			if err := awaitOpeners(filepath.Join(f.dir, "lock"), 2); err != nil {
				return err
			}
			a, err := readArchive(bytes.NewReader(data), []age.Identity{f.s.identity})
			if err != nil {
				return err
			}
			files, err := f.s.render(a)
			if err != nil {
				return err
			}
			lock, err := f.s.heldLock("restorer")
			if err != nil {
				return err
			}
			_, err = swapIn(f.dir, append(files, storeFile{"lock.json", lock}))
			return err
		})
	}()
	<-waiting
	if err := <-restored; err != nil {
		t.Fatal(err)
	}
	if err := <-entered; err != nil {
		t.Error(err)
	}
	f.s.Unlock(ctx, lease)
}

// awaitOpeners waits until n of this process's descriptors are open on
// path's file: the second one is the waiting process's.
func awaitOpeners(path string, n int) error {
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return err
		}
		found := 0
		for _, e := range ents {
			var st unix.Stat_t
			if unix.Stat("/proc/self/fd/"+e.Name(), &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
				found++
			}
		}
		if found >= n {
			return nil
		}
	}
	return fmt.Errorf("%s: fewer than %d descriptors open on it after 10 s", path, n)
}
