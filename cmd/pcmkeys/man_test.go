package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestManPages: man DIR writes pcmkeys.1 and a page for every command
// --help lists (the hidden man itself excepted), each with its name, its
// long description and its flags; with SOURCE_DATE_EPOCH a second run
// writes the same bytes.
func TestManPages(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := filepath.Join(t.TempDir(), "share/man/man1")
	var out, errb bytes.Buffer
	if code := run([]string{"man", dir}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("man: exit %d: %s", code, errb.String())
	}

	g := &globals{in: strings.NewReader(""), stdout: &out, stderr: &errb}
	root := newRootCmd(g)
	root.InitDefaultCompletionCmd()
	var want []string
	walk(root, func(c *cobra.Command) {
		if c.Hidden || (c.HasParent() && !c.IsAvailableCommand()) {
			return
		}
		want = append(want, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
	})
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("pages %q, want %q", got, want)
	}
	for _, name := range []string{"pcmkeys-man.1", "pcmkeys-help.1"} {
		if slices.Contains(got, name) {
			t.Errorf("%s written: it is not a command --help lists", name)
		}
	}

	page := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	rotate := page("pcmkeys-rotate.1")
	for _, s := range []string{`.TH "PCMKEYS-ROTATE" "1" "Nov 2023" "pcmkeys `, `pcmkeys-rotate - New keys`, `rotates the Pacemaker Remote authkey on the live cluster`, `\fB--restart\fP`, `\fBpcmkeys(1)\fP`} {
		if !strings.Contains(rotate, s) {
			t.Errorf("pcmkeys-rotate.1 lacks %q:\n%s", s, rotate)
		}
	}
	if top := page("pcmkeys.1"); !strings.Contains(top, `\fBpcmkeys-rotate(1)\fP`) || strings.Contains(top, "Auto generated") {
		t.Errorf("pcmkeys.1 does not list pcmkeys-rotate(1), or says it was auto generated:\n%s", top)
	}

	again := t.TempDir()
	if code := run([]string{"man", again}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("man again: exit %d: %s", code, errb.String())
	}
	for _, name := range got {
		b, _ := os.ReadFile(filepath.Join(again, name))
		if string(b) != page(name) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}

func TestManUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"man"}, strings.NewReader(""), &out, &errb); code != exitBadInput {
		t.Errorf("man without DIR: exit %d, want %d", code, exitBadInput)
	}
	if code := run([]string{"--help"}, strings.NewReader(""), &out, &errb); code != 0 || strings.Contains(out.String(), "\n  man ") {
		t.Errorf("--help lists the hidden man command (exit %d):\n%s", code, out.String())
	}
}
