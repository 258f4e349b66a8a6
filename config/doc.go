// Package config reads pcmkeys's YAML configuration strictly and turns it
// into a validated [Config].
//
// [Load] reports every problem at once, each with its line number: unknown
// keys, wrong types, invalid names, unsafe modes, unknown hosts, duplicate
// hosts. Nothing that reads a config acts on one that failed to load.
//
// Relative paths in the file (the store, host roots, known_hosts) are
// resolved against the directory of the config file, so a scheduled job
// does not depend on its working directory. A leading "~/" in an operator
// path expands to the home of the user running pcmkeys; in a client key
// path it stays as it is and is expanded later, against the admin's home on
// the client host.
//
// [Find] chooses the file: --config, then $PCMKEYS_CONFIG, then
// ./pcmkeys.yaml, then /etc/pcmkeys/pcmkeys.yaml.
package config
