package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxConfigBytes bounds the size of a config file.
const MaxConfigBytes = 1 << 20

// ErrInvalid is wrapped by every error that means the config is wrong (as
// opposed to unreadable), so the CLI can exit 2.
var ErrInvalid = errors.New("invalid config")

// Problem is one thing wrong with a config file.
type Problem struct {
	Line  int    `json:"line,omitempty"`
	Field string `json:"field,omitempty"`
	Msg   string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a config file.
type Error struct {
	Source   string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = "  " + p.String()
	}
	return fmt.Sprintf("config %s has %d problem(s):\n%s", e.Source, len(e.Problems), strings.Join(lines, "\n"))
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

// Find returns the config file to use: flagValue if set, else
// $PCMKEYS_CONFIG, else ./pcmkeys.yaml if it exists, else
// /etc/pcmkeys/pcmkeys.yaml.
func Find(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv("PCMKEYS_CONFIG"); env != "" {
		return env
	}
	if _, err := os.Stat("pcmkeys.yaml"); err == nil {
		return "pcmkeys.yaml"
	}
	return "/etc/pcmkeys/pcmkeys.yaml"
}

// Load reads, parses and validates the config file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return Parse(data, abs)
}

// Parse parses and validates a config document. source is the file's path,
// used for messages and as the base of relative paths.
func Parse(data []byte, source string) (*Config, error) {
	cerr := &Error{Source: source}
	if len(data) > MaxConfigBytes {
		cerr.Problems = append(cerr.Problems, Problem{Msg: fmt.Sprintf("file is larger than %d bytes", MaxConfigBytes)})
		return nil, cerr
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		cerr.Problems = append(cerr.Problems, yamlProblems(err)...)
		return nil, cerr
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		cerr.Problems = append(cerr.Problems, Problem{Msg: "file is empty"})
		return nil, cerr
	}
	var raw file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var typeProblems []Problem
	if err := dec.Decode(&raw); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			cerr.Problems = append(cerr.Problems, yamlProblems(err)...)
			return nil, cerr
		}
		// Wrong types and unknown keys: report them with every other
		// problem, in one round.
		typeProblems = yamlProblems(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		cerr.Problems = append(cerr.Problems, Problem{Msg: "more than one YAML document; pcmkeys reads one"})
		return nil, cerr
	}
	v := &validator{root: root.Content[0], dir: filepath.Dir(source)}
	cfg := v.build(raw)
	cfg.Source = source
	if len(v.problems) > 0 || len(typeProblems) > 0 {
		// A value of the wrong type was left empty: what the validator
		// says of its line would only repeat the type problem.
		typed := map[int]bool{}
		for _, p := range typeProblems {
			typed[p.Line] = true
		}
		cerr.Problems = typeProblems
		for _, p := range v.problems {
			if !typed[p.Line] {
				cerr.Problems = append(cerr.Problems, p)
			}
		}
		sort.SliceStable(cerr.Problems, func(i, j int) bool { return cerr.Problems[i].Line < cerr.Problems[j].Line })
		return nil, cerr
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^\s*(?:yaml: )?line (\d+): (.*)$`)

// yamlProblems turns a yaml.v3 error into problems with line numbers.
func yamlProblems(err error) []Problem {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]Problem, 0, len(msgs))
	for _, m := range msgs {
		p := Problem{Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			p.Line, _ = strconv.Atoi(sm[1])
			p.Msg = sm[2]
		}
		p.Msg = userWords(p.Msg)
		out = append(out, p)
	}
	return out
}

var (
	unknownField = regexp.MustCompile(`^field (\S+) not found in type config\.(\w+)$`)
	wrongType    = regexp.MustCompile(`^cannot unmarshal !!(\w+)(?: ` + "`" + `([^` + "`" + `]*)` + "`" + `)? into (\S+)$`)
)

// sections name the config's structs in the words of the file.
var sections = map[string]string{
	"file": "the top level", "storeFile": "store", "vaultAuthFile": "store.auth", "sshFile": "ssh", "jumpFile": "ssh.jump",
	"cibFile": "cib", "hostFile": "a host", "policyFile": "policy", "rotateFile": "policy.rotate_after",
	"filePolicyFile": "a file of policy.files", "auditFile": "audit", "restartFile": "restart",
}

// kinds say what a Go type or a YAML tag is, in the words of the file.
var kinds = map[string]string{
	"seq": "a list", "map": "a mapping (key: value)", "str": "text", "int": "a number", "float": "a number",
	"bool": "true or false", "null": "nothing", "string": "text", "*int": "a number", "*bool": "true or false",
	"[]string": "a list of text", "[]config.hostFile": "a list of hosts", "config.hostFile": "a host (a mapping such as {name: node1})",
	"map[string]config.filePolicyFile": "a mapping of file kinds", "config.mode": "an octal mode such as \"0600\"",
	"config.duration": "a duration such as 10s",
}

// userWords rewrites a yaml.v3 message that names Go types.
func userWords(msg string) string {
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		in := sections[m[2]]
		if in == "" {
			in = "this section"
		}
		return fmt.Sprintf("unknown key %q in %s (see the config reference in the README)", m[1], in)
	}
	if m := wrongType.FindStringSubmatch(msg); m != nil {
		found, want := kinds[m[1]], kinds[m[3]]
		if found == "" {
			found = "a value of another kind"
		}
		if m[2] != "" {
			found += fmt.Sprintf(" (%q)", m[2])
		}
		if want == "" {
			if strings.HasPrefix(m[3], "config.") {
				want = "a mapping"
				if s := sections[strings.TrimPrefix(m[3], "config.")]; s != "" {
					want = s + " (a mapping)"
				}
			} else {
				want = "a value of another kind"
			}
		}
		return fmt.Sprintf("expected %s, found %s", want, found)
	}
	return strings.ReplaceAll(msg, "in type config.", "in section ")
}

// lineOf returns the line of the node at the given path of mapping keys and
// sequence indexes, or of the deepest node on the way that exists.
func lineOf(n *yaml.Node, path ...any) int {
	line := n.Line
	for _, step := range path {
		switch s := step.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || s >= len(n.Content) {
				return line
			}
			n = n.Content[s]
			line = n.Line
		}
	}
	return line
}
