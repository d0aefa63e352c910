package main

import (
	"encoding/json"

	"github.com/lichen-hs/lichen/core/todevice"
)

// mountToDevice wires send-to-device messaging: it mounts PUT
// /sendToDevice and returns the sync engine's ToDevice source
// (syncer.Sources.ToDevice). "*" reaches the devices core/accounts lists.
func mountToDevice(a *app) func(user, device string, since, upto uint64, limit int) ([]json.RawMessage, uint64, bool, error) {
	devices := func(user string) ([]string, error) {
		ds, err := a.accounts.Devices(user)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(ds))
		for i, d := range ds {
			out[i] = d.DeviceID
		}
		return out, nil
	}
	td := todevice.New(a.store, a.hub, a.accounts.ServerName(), devices)
	a.http.MountToDevice(td)
	return td.Inbox
}
