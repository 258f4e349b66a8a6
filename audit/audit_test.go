package audit

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestAppendRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "audit.jsonl")
	l := Open(p)
	if recs, err := l.Read(); err != nil || len(recs) != 0 {
		t.Fatalf("empty trail: %v %v", recs, err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Append(Record{Operator: "op", Action: "rotate", Result: "ok", HostsOK: []string{strings.Repeat("h", 2000)}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	recs, err := l.Read()
	if err != nil || len(recs) != 50 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	fi, _ := os.Stat(p)
	di, _ := os.Stat(filepath.Dir(p))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("modes %o %o", fi.Mode().Perm(), di.Mode().Perm())
	}
	// A trail written before Record lost its unused dry_run field still
	// reads; a line that is not a record is named.
	os.WriteFile(p, []byte("{\"action\":\"x\",\"dry_run\":false}\nnot json\n"), 0o600)
	recs, err = l.Read()
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: %v", err)
	}
	if len(recs) != 1 || recs[0].Action != "x" {
		t.Errorf("records before the bad line: %+v", recs)
	}
}
