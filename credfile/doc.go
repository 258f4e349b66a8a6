// Package credfile renders and parses the three file formats pcmkeys
// delivers, byte for byte as Pacemaker and GnuTLS read them:
//
//   - the server's cib-credentials file ([ParseCIBCredentials],
//     [RenderCIBCredentials]): one "identity:hexkey" line per identity, LF
//     line endings only (GnuTLS would read a CR as part of the key), sorted
//     by identity, no identity twice;
//   - an admin's client key file ([ParseClientKey], [RenderClientKey]): the
//     bare lowercase hex key and nothing else, no newline;
//   - the Pacemaker Remote authkey ([ParseAuthkey], [RenderAuthkey]): the
//     exact key bytes; a trailing newline would be part of the key.
//
// Parsers read files that someone else may have written. They report every
// malformed line by its number and say what is wrong, and never repeat a
// line's content: a line that cannot be parsed might be key material.
package credfile
