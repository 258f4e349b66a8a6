package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pcmkeys/pcmkeys/config"
)

// TestHugeConfig: a config larger than config.MaxConfigBytes is refused by
// its size, as a config error (exit 2), before it is parsed. (The other
// hostile configs, names and paths are scripts: testdata/script/*_hostile.txtar.)
func TestHugeConfig(t *testing.T) {
	huge := filepath.Join(t.TempDir(), "huge.yaml")
	if err := os.WriteFile(huge, []byte("cluster: c\n"+strings.Repeat("# padding\n", config.MaxConfigBytes/10+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, false, "--config", huge, "status"); code != 2 || !strings.Contains(stderr, "larger than") {
		t.Errorf("huge config: exit %d: %s", code, stderr)
	}
	var ce *config.Error
	if _, err := config.Load(huge); !errors.As(err, &ce) {
		t.Errorf("huge config error type: %v", err)
	}
}
