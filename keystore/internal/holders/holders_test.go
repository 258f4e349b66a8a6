package holders

import (
	"fmt"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("admin%04d", i)
	}
	fits := []string{strings.Repeat("a", 255), strings.Repeat("b", 256)} // 512 bytes with the comma
	cases := []struct {
		name string
		in   []string
		want string
	}{
		{"none", nil, ""},
		{"one", []string{"alice"}, "alice"},
		{"two", []string{"alice", "bob"}, "alice,bob"},
		{"exactly 512 bytes", fits, strings.Join(fits, ",")},
		{"too long", many, "100 admins (see admins/)"},
	}
	for _, tc := range cases {
		if got := Summary(tc.in); got != tc.want || len(got) > MaxLen {
			t.Errorf("%s: Summary = %q, want %q", tc.name, got, tc.want)
		}
	}
}
