package main

import (
	"github.com/lichen-hs/lichen/core/accounts"
	"github.com/lichen-hs/lichen/core/e2ee"
	"github.com/lichen-hs/lichen/core/syncer"
)

// mountKeys wires the end-to-end encryption keys: the service, its
// endpoints, the device observer and the sync sources (device lists and
// key counts). It returns the service and a function that completes the
// wiring once the sync engine exists (keys/changes is computed by it).
func mountKeys(a *app, src *syncer.Sources) (*e2ee.Service, func(*syncer.Engine)) {
	k := e2ee.New(a.store, a.accounts.ServerName(), a.hub.Wake, a.rooms.Peers, func(user, dev string) (string, bool) {
		d, err := a.accounts.Device(user, dev)
		return d.DisplayName, err == nil
	})
	src.DeviceListChanges = a.store.DeviceListChanges
	src.KeyCounts = func(user, device string) (map[string]int, []string, error) {
		c, err := k.Counts(user, device)
		if err != nil {
			return nil, nil, err
		}
		fb, err := k.UnusedFallback(user, device)
		return c, fb, err
	}
	return k, func(eng *syncer.Engine) {
		a.http.MountKeys(k, a.accounts, func(user, from, to string) ([]string, []string, error) {
			f, err := syncer.ParseToken(from)
			if err != nil {
				return nil, nil, err
			}
			t := syncer.Token{Pos: a.store.Pos()}
			if to != "" {
				if t, err = syncer.ParseToken(to); err != nil {
					return nil, nil, err
				}
			}
			return eng.DeviceLists(user, f.Pos, t.Pos)
		})
	}
}

// deviceObservers tells several services about added and deleted devices.
type deviceObservers []accounts.DeviceObserver

func (o deviceObservers) DeviceAdded(user, device string) {
	for _, x := range o {
		x.DeviceAdded(user, device)
	}
}

func (o deviceObservers) DevicesDeleted(user string, devices []string) {
	for _, x := range o {
		x.DevicesDeleted(user, devices)
	}
}
