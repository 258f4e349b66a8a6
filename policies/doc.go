// Package policies holds the rules pcmkeys applies before it writes
// anything: which names are valid for identities, users and hosts, which key
// sizes are allowed, where each credential file lives with which owner,
// group and mode, when a key is due for rotation, and which identity mode
// the cluster uses.
//
// Everything here is pure: no I/O, no network. The config package builds a
// [Policy] from the YAML file and [Policy.Validate] judges it; the
// lifecycle workflows ask it questions: how big a new key is
// ([Policy.KeySize]), how old a key may get ([Policy.MaxAge],
// [Policy.Due]), which identity an admin uses ([Policy.Identity]).
//
// # Names
//
// [ValidateIdentity], [ValidateUser] and [ValidateHost] keep every name that
// ends up in a credential line, a path or a store key from injecting or
// corrupting anything: no ':', no whitespace, no control characters, no
// leading '#', no '/', never empty, bounded length.
//
// # Files
//
// A [FilePolicy] says where a file lives and who owns it. [FilePolicy.Validate]
// refuses any mode that gives group or other a permission bit, or that the
// owner itself could not read.
package policies
