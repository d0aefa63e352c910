package accounts

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// SeenInterval is how stale a device's last_seen_ts may get: activity is
// written at most this often per device, not on every request (the spec
// allows "a few minutes out of date, for efficiency reasons").
const SeenInterval = time.Minute

// maxDeviceDisplayName is Synapse's limit on device display names.
const maxDeviceDisplayName = 100

// Seen records that a device made a request from ip ("" when unknown). It
// writes to the store at most once per SeenInterval per device, in the
// background, so requests never wait for it.
func (s *Service) Seen(userID, deviceID, ip string) {
	if deviceID == "" {
		return
	}
	now := s.nowMS()
	k := userID + "\x00" + deviceID
	s.seenMu.Lock()
	last, ok := s.seen[k]
	if ok && now-last < SeenInterval.Milliseconds() {
		s.seenMu.Unlock()
		return
	}
	s.seen[k] = now
	if len(s.seen) > 16384 {
		clear(s.seen)
	}
	s.seenMu.Unlock()
	go func() {
		if err := s.store.TouchDevice(userID, deviceID, now, ip); err != nil && !errors.Is(err, ErrNotFound) {
			logHookErr("touch device", userID, err)
		}
	}()
}

// noteSeen records a write of last-seen data that happened elsewhere (login).
func (s *Service) noteSeen(userID, deviceID string, now int64) {
	s.seenMu.Lock()
	s.seen[userID+"\x00"+deviceID] = now
	s.seenMu.Unlock()
}

// clampDeviceName cuts an initial_device_display_name to the limit
// (Synapse truncates rather than refusing a login over it), at a rune boundary.
func clampDeviceName(name string) string {
	if len(name) <= maxDeviceDisplayName {
		return name
	}
	cut := maxDeviceDisplayName
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut]
}

// DeviceInfo is a device as the client-server API shows it
// (definitions/client_device.yaml).
type DeviceInfo struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	LastSeenIP  string `json:"last_seen_ip,omitempty"`
	LastSeenTS  int64  `json:"last_seen_ts,omitempty"`
}

func deviceInfo(d Device) DeviceInfo {
	return DeviceInfo{DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenIP: d.LastSeenIP, LastSeenTS: d.LastSeenTS}
}

// Devices lists a user's devices (GET /devices).
func (s *Service) Devices(userID string) ([]DeviceInfo, error) {
	ds, err := s.store.AccountDevices(userID)
	if err != nil {
		return nil, err
	}
	out := make([]DeviceInfo, len(ds))
	for i, d := range ds {
		out[i] = deviceInfo(d)
	}
	return out, nil
}

// Device returns one of the user's devices (GET /devices/{deviceId}).
func (s *Service) Device(userID, deviceID string) (DeviceInfo, error) {
	d, err := s.store.AccountDevice(userID, deviceID)
	if errors.Is(err, ErrNotFound) {
		return DeviceInfo{}, mxerr.NotFound("unknown device")
	}
	if err != nil {
		return DeviceInfo{}, err
	}
	return deviceInfo(d), nil
}

// HasDevice reports whether the user has the device (for other modules).
func (s *Service) HasDevice(userID, deviceID string) (bool, error) {
	_, err := s.store.AccountDevice(userID, deviceID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// SetDeviceDisplayName performs PUT /devices/{deviceId}. A nil name leaves
// the device unchanged. Creating devices this way is for application
// services only, so an unknown device is 404.
func (s *Service) SetDeviceDisplayName(userID, deviceID string, name *string) error {
	if name == nil {
		_, err := s.Device(userID, deviceID)
		return err
	}
	if len(*name) > maxDeviceDisplayName {
		return mxerr.New(400, "M_TOO_LARGE", "device display name is longer than 100 bytes")
	}
	err := s.store.SetDeviceDisplayName(userID, deviceID, *name)
	if errors.Is(err, ErrNotFound) {
		return mxerr.NotFound("unknown device")
	}
	return err
}

// DeleteDevices performs DELETE /devices/{deviceId} and POST
// /delete_devices, which need m.login.password (spec: device management,
// "Security considerations"). Unknown device IDs are not an error.
func (s *Service) DeleteDevices(sess Session, deviceIDs []string, auth json.RawMessage) error {
	list := slices.Clone(deviceIDs)
	slices.Sort(list)
	list = slices.Compact(list)
	for _, d := range list {
		if err := validDeviceID(d); err != nil {
			return err
		}
	}
	u, err := s.runUIA(uiaRequest{
		binding: "delete_devices\x00" + sess.UserID + "\x00" + strings.Join(list, "\x00"),
		user:    sess.UserID,
		flows:   [][]string{{AuthPassword}},
		auth:    auth,
	})
	if err != nil {
		return err
	}
	if len(list) > 0 {
		deleted, err := s.store.DeleteAccountDevices(sess.UserID, list)
		if err != nil {
			return err
		}
		s.devicesDeleted(sess.UserID, deleted)
	}
	s.finishUIA(u)
	return nil
}
