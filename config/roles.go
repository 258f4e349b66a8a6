package config

import "github.com/pcmkeys/pcmkeys/policies"

// Role is what a host is in the cluster.
type Role string

const (
	RoleNode       Role = "node"        // full cluster node: cib-credentials and authkey
	RoleRemoteNode Role = "remote_node" // Pacemaker Remote node: authkey
	RoleClient     Role = "client"      // an admin's workstation: client files only
)

// Holds reports whether pcmkeys keeps a file of kind k on a host of role
// r (when the cluster has such a file at all: hacluster's password and
// its client copy only in shared mode with a managed password). Full
// nodes hold cib-credentials, the authkey and hacluster's password;
// remote nodes the authkey; clients an admin's key, env and password
// files.
func (r Role) Holds(k policies.FileKind) bool {
	switch r {
	case RoleNode:
		return k == policies.CIBCredentials || k == policies.Authkey || k == policies.NodePassword
	case RoleRemoteNode:
		return k == policies.Authkey
	case RoleClient:
		return k == policies.ClientKey || k == policies.ClientEnv || k == policies.ClientPassword
	}
	return false
}

// RunsPacemaker reports whether a host of role r runs Pacemaker (a full
// node or a remote node): it reads the authkey, and an authkey rotation
// may need to restart it.
func (r Role) RunsPacemaker() bool { return r == RoleNode || r == RoleRemoteNode }
