package config

import (
	"testing"

	"github.com/pcmkeys/pcmkeys/policies"
)

func TestRoleHolds(t *testing.T) {
	kinds := []policies.FileKind{policies.CIBCredentials, policies.Authkey, policies.NodePassword,
		policies.ClientKey, policies.ClientEnv, policies.ClientPassword}
	cases := []struct {
		role      Role
		holds     []policies.FileKind
		pacemaker bool
	}{
		{RoleNode, []policies.FileKind{policies.CIBCredentials, policies.Authkey, policies.NodePassword}, true},
		{RoleRemoteNode, []policies.FileKind{policies.Authkey}, true},
		{RoleClient, []policies.FileKind{policies.ClientKey, policies.ClientEnv, policies.ClientPassword}, false},
		{Role("bastion"), nil, false},
	}
	for _, tc := range cases {
		t.Run(string(tc.role), func(t *testing.T) {
			want := map[policies.FileKind]bool{}
			for _, k := range tc.holds {
				want[k] = true
			}
			for _, k := range kinds {
				if got := tc.role.Holds(k); got != want[k] {
					t.Errorf("%s.Holds(%s) = %v, want %v", tc.role, k, got, want[k])
				}
			}
			if got := tc.role.RunsPacemaker(); got != tc.pacemaker {
				t.Errorf("%s.RunsPacemaker() = %v, want %v", tc.role, got, tc.pacemaker)
			}
		})
	}
}
