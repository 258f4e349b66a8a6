package distribute

import (
	"io/fs"
	"testing"
)

func TestCompare(t *testing.T) {
	content := []byte("0123456789abcdef")
	want := File{Path: "/etc/pacemaker/authkey", Content: content, Owner: "hacluster", Group: "haclient", Mode: 0o600}
	good := FileState{
		Path: want.Path, Exists: true, Regular: true, Owner: "hacluster", Group: "haclient",
		UID: 189, GID: 189, Mode: 0o600, Size: int64(len(content)), SHA256: want.SHA256(),
	}
	with := func(f func(*FileState)) FileState {
		st := good
		f(&st)
		return st
	}
	wantWith := func(f func(*File)) File {
		w := want
		f(&w)
		return w
	}
	tests := []struct {
		name    string
		st      FileState
		want    File
		finding Finding
		detail  string
	}{
		{"in sync", good, want, FindingOK, ""},
		{"missing", FileState{Path: want.Path}, want, FindingMissing, "no such file"},
		{"missing, content not judged", FileState{Path: want.Path}, wantWith(func(w *File) { w.Content = nil }), FindingMissing, "no such file"},
		{"symlink", with(func(s *FileState) { s.Regular, s.Symlink, s.SHA256, s.Mode = false, true, "", 0o777 }), want, FindingNotRegular, "a symbolic link"},
		{"directory", with(func(s *FileState) { s.Regular, s.SHA256, s.Mode = false, "", 0o700 }), want, FindingNotRegular, "not a regular file"},
		{"symlink, content not judged", with(func(s *FileState) { s.Regular, s.Symlink, s.SHA256 = false, true, "" }), wantWith(func(w *File) { w.Content = nil }), FindingNotRegular, "a symbolic link"},
		{"content differs", with(func(s *FileState) { s.SHA256 = hashHex([]byte("other")) }), want, FindingContent, "content differs"},
		{"too large", with(func(s *FileState) { s.SHA256, s.TooLarge, s.Size = "", true, maxReadBack+1 }), want, FindingContent, "larger than 16 MiB"},
		{"unreadable", with(func(s *FileState) { s.SHA256 = "" }), want, FindingContent, "content could not be read"},
		{"empty content is judged", good, wantWith(func(w *File) { w.Content = []byte{} }), FindingContent, "content differs"},
		{"content not judged", with(func(s *FileState) { s.SHA256 = hashHex([]byte("other")) }), wantWith(func(w *File) { w.Content = nil }), FindingOK, ""},
		{"too large, content not judged", with(func(s *FileState) { s.SHA256, s.TooLarge = "", true }), wantWith(func(w *File) { w.Content = nil }), FindingOK, ""},
		{"content before owner and mode", with(func(s *FileState) { s.SHA256, s.Owner, s.Mode = hashHex(nil), "root", 0o644 }), want, FindingContent, "content differs"},
		{"owner", with(func(s *FileState) { s.Owner = "root" }), want, FindingOwner, "owned by root:haclient, want hacluster:haclient"},
		{"group", with(func(s *FileState) { s.Group = "root" }), want, FindingOwner, "owned by hacluster:root, want hacluster:haclient"},
		{"any group", with(func(s *FileState) { s.Group = "root" }), wantWith(func(w *File) { w.Group = "" }), FindingOK, ""},
		{"any group, owner differs", with(func(s *FileState) { s.Owner = "alice" }), wantWith(func(w *File) { w.Group = "" }), FindingOwner, "owned by alice:haclient, want hacluster"},
		{"owner before mode", with(func(s *FileState) { s.Owner, s.Mode = "root", 0o644 }), want, FindingOwner, "owned by root:haclient, want hacluster:haclient"},
		{"mode looser", with(func(s *FileState) { s.Mode = 0o644 }), want, FindingMode, "mode 0644, want 0600"},
		{"mode stricter", with(func(s *FileState) { s.Mode = 0o400 }), want, FindingMode, "mode 0400, want 0600"},
		{"setuid", with(func(s *FileState) { s.Mode = 0o600 | fs.ModeSetuid }), want, FindingMode, "mode 4600, want 0600"},
		{"setgid", with(func(s *FileState) { s.Mode = 0o600 | fs.ModeSetgid }), want, FindingMode, "mode 2600, want 0600"},
		{"sticky", with(func(s *FileState) { s.Mode = 0o600 | fs.ModeSticky }), want, FindingMode, "mode 1600, want 0600"},
		{"mode, content not judged", with(func(s *FileState) { s.Mode = 0o640 }), wantWith(func(w *File) { w.Content = nil }), FindingMode, "mode 0640, want 0600"},
		{"0400 policy", with(func(s *FileState) { s.Mode = 0o400 }), wantWith(func(w *File) { w.Mode = 0o400 }), FindingOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, d := Compare(tc.st, tc.want)
			if f != tc.finding || d != tc.detail {
				t.Errorf("Compare = %q, %q; want %q, %q", f, d, tc.finding, tc.detail)
			}
		})
	}
}
