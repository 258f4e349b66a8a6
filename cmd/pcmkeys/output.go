package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/pcmkeys/pcmkeys/rotate"
)

// printResult writes v as JSON with --output json (lists that are empty
// as [], never null), else text, which -q leaves out.
func printResult(g *globals, v any, text string) error {
	if g.output == "json" {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(emptyLists(v))
	}
	if g.quiet {
		return nil
	}
	_, err := io.WriteString(g.stdout, text)
	return err
}

// printReport renders a workflow's report. It is printed even when the
// workflow failed part-way, so the operator sees what was done, and in
// JSON even when nothing was done (a scheduled run that found nothing due).
func printReport(g *globals, rep *rotate.Report) error {
	if rep == nil || (g.output != "json" && len(rep.Credentials) == 0 && len(rep.Hosts) == 0 && len(rep.Notes) == 0) {
		return nil
	}
	return printResult(g, rep, reportText(rep))
}

// printError writes a failed run's error: in words on stderr, or with
// --output json as one JSON object there ({"error": …, "exit": …}), so
// stdout holds nothing but the report.
func printError(g *globals, err error, code int, hint string) {
	if g.output == "json" {
		b, _ := json.Marshal(struct {
			Error string `json:"error"`
			Exit  int    `json:"exit"`
			Hint  string `json:"hint,omitempty"`
		}{err.Error(), code, hint})
		fmt.Fprintf(g.stderr, "%s\n", b)
		return
	}
	fmt.Fprintln(g.stderr, "pcmkeys:", err)
	if hint != "" {
		fmt.Fprintln(g.stderr, "pcmkeys:", hint)
	}
}

// emptyLists returns v with every nil slice it holds (through pointers,
// structs and slices) made empty, so JSON shows [] for a list with
// nothing in it. Fields tagged omitempty are left out as before.
func emptyLists(v any) any {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return v
	}
	cp := reflect.New(rv.Type()).Elem()
	cp.Set(rv)
	fillLists(cp)
	return cp.Interface()
}

func fillLists(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			cp := reflect.New(v.Elem().Type())
			cp.Elem().Set(v.Elem())
			fillLists(cp.Elem())
			v.Set(cp)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() && v.Field(i).CanSet() {
				fillLists(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			if v.Type().Elem().Kind() != reflect.Uint8 { // []byte is a string in JSON
				v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			}
			return
		}
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(cp, v)
		for i := range cp.Len() {
			fillLists(cp.Index(i))
		}
		v.Set(cp)
	}
}

func reportText(rep *rotate.Report) string {
	var b strings.Builder
	if rep.DryRun {
		fmt.Fprintf(&b, "%s (dry run: nothing was changed)\n", rep.Action)
	} else {
		fmt.Fprintf(&b, "%s\n", rep.Action)
	}
	for _, c := range rep.Credentials {
		state := "current"
		if c.Created {
			state = "created"
			if rep.DryRun {
				state = "would create"
			}
		}
		fp := c.Fingerprint
		if fp == "" {
			fp = rotate.NewKeyMarker
		}
		fmt.Fprintf(&b, "  key %-20s v%-3d %-12s %s\n", c.ID, c.Version, state, fp)
	}
	for _, h := range rep.Hosts {
		fmt.Fprintf(&b, "  host %s: %s\n", h.Host, words(h.Status))
		for _, f := range h.Files {
			owner := f.Owner
			if f.Group != "" {
				owner += ":" + f.Group
			}
			what := f.Fingerprint
			switch {
			case f.Identities > 1:
				what = fmt.Sprintf("%d identities", f.Identities)
			case what == "" && rep.DryRun:
				what = rotate.NewKeyMarker
			case what == "":
				what = "-"
			}
			action := words(f.Action)
			if f.Detail != "" {
				action += ": " + f.Detail
			}
			if f.Swept > 0 {
				action += fmt.Sprintf(" (%d leftover temp file(s) removed)", f.Swept)
			}
			fmt.Fprintf(&b, "    %-40s %s %-18s %s  %s\n", f.Path, f.Mode, owner, what, action)
		}
		if h.Error != "" {
			fmt.Fprintf(&b, "    error: %s\n", h.Error)
		}
	}
	if len(rep.Prechecks) > 0 {
		b.WriteString("\nthe live cluster before anything changed:\n")
		for _, c := range rep.Prechecks {
			mark := "ok  "
			switch {
			case c.Overridden:
				mark = "OVERRIDDEN"
			case !c.OK:
				mark = "FAIL"
			}
			fmt.Fprintf(&b, "  %s %s: %s\n", mark, c.Name, c.Detail)
		}
	}
	if len(rep.Timeline) > 0 {
		b.WriteString("\ntimeline:\n")
		for _, s := range rep.Timeline {
			host := s.Host
			if host == "" {
				host = "-"
			}
			fmt.Fprintf(&b, "  %8s  %-10s %s: %s\n", s.At, host, s.Step, s.Result)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	loginsText(&b, rep.Logins)
	if rep.ClientEnv != nil {
		b.WriteString("\nThe admin's environment (also in the env file on each client):\n")
		for _, v := range rep.ClientEnv.Vars() {
			fmt.Fprintf(&b, "  export %s=%s\n", v[0], v[1])
		}
		if f := rep.ClientEnv.PasswordFile; f != "" {
			fmt.Fprintf(&b, "  export CIB_passwd=\"$(cat %s)\"    # hacluster's password, which pcmkeys manages\n", f)
		}
	}
	return b.String()
}

// words is a short typed value (a status, an action, a state) as people
// read it: "timed_out" is "timed out".
func words[S ~string](v S) string {
	switch s := string(v); s {
	case string(rotate.ActionNotTheirs):
		return "left alone"
	case string(rotate.ActionLeftover):
		return "left behind"
	default:
		return strings.ReplaceAll(s, "_", " ")
	}
}
