package main

import "github.com/lichen-hs/lichen/core/keybackup"

// mountKeyBackup wires server-side key backups (core/keybackup) on the
// store and mounts their /room_keys endpoints.
func mountKeyBackup(a *app) {
	a.http.MountKeyBackup(keybackup.New(a.store))
}
