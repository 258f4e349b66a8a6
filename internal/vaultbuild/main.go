// Command vaultbuild builds the test Vault (internal/vaultdev) into the
// user's cache directory, once per machine, so that scripts/test.sh can do
// it as a visible step before go test instead of silently inside the first
// test package that needs it. It prints the binary's path.
package main

import (
	"fmt"
	"os"

	"github.com/pcmkeys/pcmkeys/internal/vaultlab"
)

func main() {
	if r := vaultlab.SkipReason(); r != "" {
		fmt.Println("skip:", r)
		return
	}
	path, err := vaultlab.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vaultbuild:", err)
		os.Exit(1)
	}
	fmt.Println("test Vault:", path)
}
