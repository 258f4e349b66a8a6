package distribute

import (
	"bytes"
	"io"
	"testing"
)

// sizes records the largest buffer it was handed (to read into or to
// write from).
type sizes struct {
	r       io.Reader
	largest int
	written bytes.Buffer
}

func (s *sizes) Read(p []byte) (int, error) {
	s.largest = max(s.largest, len(p))
	return s.r.Read(p)
}

func (s *sizes) Write(p []byte) (int, error) {
	s.largest = max(s.largest, len(p))
	return s.written.Write(p)
}

// TestSessionCopies: what a session copies (stdin from a secretReader,
// stdout and stderr into a limitedBuffer) goes through io.Copy in
// x/crypto/ssh; both copy through their own small buffers, not io.Copy's
// 32 KB each, and keep their promises (all of the secret sent, at most
// max bytes kept).
func TestSessionCopies(t *testing.T) {
	secret := bytes.Repeat([]byte("0123456789abcdef"), 10_000) // 160 KB
	in := &secretReader{b: bytes.Clone(secret)}
	out := &sizes{}
	if n, err := io.Copy(out, in); err != nil || n != int64(len(secret)) || !bytes.Equal(out.written.Bytes(), secret) {
		t.Fatalf("copied %d of %d bytes (%v), or other bytes", n, len(secret), err)
	}
	if out.largest > copyChunk {
		t.Errorf("stdin went in chunks of %d bytes: io.Copy's own buffer, not the reader's", out.largest)
	}
	in.wipe()
	if n, _ := io.Copy(io.Discard, in); n != 0 {
		t.Errorf("a wiped reader still gave %d bytes", n)
	}

	src := &sizes{r: bytes.NewReader(secret)}
	kept := &limitedBuffer{max: 1000}
	if n, err := io.Copy(kept, src); err != nil || n != int64(len(secret)) {
		t.Fatalf("read %d of %d bytes: %v", n, len(secret), err)
	}
	if src.largest > copyChunk {
		t.Errorf("stdout was read in chunks of %d bytes: io.Copy's own buffer", src.largest)
	}
	if kept.String() != string(secret[:1000]) {
		t.Errorf("kept %d bytes, want the first 1000", kept.Len())
	}
}
