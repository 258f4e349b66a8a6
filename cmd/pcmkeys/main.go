// Command pcmkeys manages the keys that guard a Pacemaker cluster's remote
// interfaces: it generates CIB TLS-PSK keys and Pacemaker Remote authkeys,
// keeps them in a store, and delivers them as safely written files.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
