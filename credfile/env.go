package credfile

import (
	"fmt"
	"strconv"
	"strings"
)

// ClientEnv is what an admin's shell needs to reach the CIB over TLS-PSK.
// It holds no key material: KeyFile names the file that does.
type ClientEnv struct {
	Server  string `json:"server"`   // CIB_server
	Port    int    `json:"port"`     // CIB_port
	User    string `json:"user"`     // CIB_user, which is also the PSK identity
	KeyFile string `json:"key_file"` // CIB_key_file
	// PasswordFile, if set, is the file the env file reads CIB_passwd
	// from when sourced (the password never sits in the env file itself).
	PasswordFile string `json:"password_file,omitempty"`
}

// Vars returns the variables in the order they are written, with
// CIB_encrypted=true always set: Pacemaker treats an unset CIB_encrypted as
// plaintext.
func (e ClientEnv) Vars() [][2]string {
	return [][2]string{
		{"CIB_server", e.Server},
		{"CIB_port", strconv.Itoa(e.Port)},
		{"CIB_user", e.User},
		{"CIB_encrypted", "true"},
		{"CIB_key_file", e.KeyFile},
	}
}

// RenderClientEnv renders e as a POSIX shell file to source, one
// "export NAME='value'" line per variable.
func RenderClientEnv(e ClientEnv) ([]byte, error) {
	if e.Server == "" || e.User == "" || e.KeyFile == "" || e.Port <= 0 || e.Port > 65535 {
		return nil, fmt.Errorf("client env: server, port (1-65535), user and key file are all required")
	}
	var b strings.Builder
	b.WriteString("# Written by pcmkeys. Source it: . this-file\n")
	for _, v := range e.Vars() {
		q, err := shellQuote(v[1])
		if err != nil {
			return nil, fmt.Errorf("client env %s: %w", v[0], err)
		}
		fmt.Fprintf(&b, "export %s=%s\n", v[0], q)
	}
	if e.PasswordFile != "" {
		q, err := shellQuote(e.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("client env password file: %w", err)
		}
		// read is a shell builtin: no process sees the password.
		fmt.Fprintf(&b, "IFS= read -r CIB_passwd < %s\nexport CIB_passwd\n", q)
	}
	return []byte(b.String()), nil
}

// shellQuote single-quotes s for a POSIX shell.
func shellQuote(s string) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("value contains a control character")
		}
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'", nil
}
