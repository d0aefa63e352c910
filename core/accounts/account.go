package accounts

import (
	"encoding/json"
	"errors"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/secret"
)

// maxPasswordBytes bounds passwords (Synapse's limit): hashing cost does
// not depend on length, but nobody needs more and it bounds request work.
const maxPasswordBytes = 512

// Whoami is the answer of GET /account/whoami.
type Whoami struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id,omitempty"`
	IsGuest  bool   `json:"is_guest"`
}

// Whoami answers GET /account/whoami.
func (s *Service) Whoami(sess Session) Whoami {
	return Whoami{UserID: sess.UserID, DeviceID: sess.DeviceID}
}

// PasswordRequest is the body of POST /account/password.
type PasswordRequest struct {
	NewPassword   string          `json:"new_password"`
	LogoutDevices *bool           `json:"logout_devices"`
	Auth          json.RawMessage `json:"auth"`
}

// ChangePassword performs POST /account/password (spec: "Password
// management"), protected by m.login.password. Unless logout_devices is
// false, every other device is logged out; the caller's token is kept
// ("The homeserver SHOULD NOT revoke the access token provided").
func (s *Service) ChangePassword(sess Session, req PasswordRequest) error {
	if len(req.NewPassword) > maxPasswordBytes {
		return mxerr.InvalidParam("new_password is longer than 512 bytes")
	}
	u, err := s.runUIA(uiaRequest{
		binding: "password\x00" + sess.UserID,
		user:    sess.UserID,
		flows:   [][]string{{AuthPassword}},
		auth:    req.Auth,
	})
	if err != nil {
		return err
	}
	if req.NewPassword == "" {
		return mxerr.MissingParam("new_password is required")
	}
	hash, err := secret.HashPassword(req.NewPassword)
	if err != nil {
		return err
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	deleted, err := s.store.ChangePassword(sess.UserID, hash, sess.DeviceID, logout)
	if err != nil {
		return err
	}
	s.devicesDeleted(sess.UserID, deleted)
	s.finishUIA(u)
	return nil
}

// SetPassword sets a user's password without UIA and logs out all devices
// (for the admin API and CLI).
func (s *Service) SetPassword(userID, password string, logoutDevices bool) error {
	if password == "" || len(password) > maxPasswordBytes {
		return mxerr.InvalidParam("password must be 1 to 512 bytes")
	}
	hash, err := secret.HashPassword(password)
	if err != nil {
		return err
	}
	deleted, err := s.store.ChangePassword(userID, hash, "", logoutDevices)
	if errors.Is(err, ErrNotFound) {
		return mxerr.NotFound("unknown user")
	}
	if err != nil {
		return err
	}
	s.sessions.dropUser(userID, "")
	s.devicesDeleted(userID, deleted)
	return nil
}

// DeactivateRequest is the body of POST /account/deactivate.
type DeactivateRequest struct {
	Auth     json.RawMessage `json:"auth"`
	IDServer string          `json:"id_server"`
	Erase    bool            `json:"erase"`
}

// DeactivateResponse is the answer of POST /account/deactivate.
type DeactivateResponse struct {
	IDServerUnbindResult string `json:"id_server_unbind_result"`
}

// Deactivate performs POST /account/deactivate (spec: "Account
// deactivation"), protected by m.login.password.
func (s *Service) Deactivate(sess Session, req DeactivateRequest) (*DeactivateResponse, error) {
	u, err := s.runUIA(uiaRequest{
		binding: "deactivate\x00" + sess.UserID,
		user:    sess.UserID,
		flows:   [][]string{{AuthPassword}},
		auth:    req.Auth,
	})
	if err != nil {
		return nil, err
	}
	if err := s.DeactivateUser(sess.UserID); err != nil {
		return nil, err
	}
	s.finishUIA(u)
	// Lichen binds no 3PIDs, so there is nothing to unbind; the spec says
	// the result "must be success if the homeserver has no identifiers to
	// unbind for the user".
	return &DeactivateResponse{IDServerUnbindResult: "success"}, nil
}

// DeactivateUser deactivates an account without UIA (for Deactivate and
// the admin API): it can no longer log in, its devices, tokens and profile
// are deleted, and it leaves every room. The user ID stays taken.
func (s *Service) DeactivateUser(userID string) error {
	deleted, err := s.store.DeactivateAccount(userID)
	if errors.Is(err, ErrNotFound) {
		return mxerr.NotFound("unknown user")
	}
	if err != nil {
		return err
	}
	s.sessions.dropUser(userID, "")
	s.devicesDeleted(userID, deleted)
	// The account is deactivated first so that nothing can join a room
	// behind LeaveAll's back; a failure here leaves the account deactivated
	// (it cannot be undone by the client, whose tokens are gone) and is
	// logged for the administrator.
	if s.rooms != nil {
		logHookErr("leave all rooms", userID, s.rooms.LeaveAll(userID))
	}
	return nil
}

// IsAdmin reports whether userID is a local server administrator.
func (s *Service) IsAdmin(userID string) bool {
	a, err := s.store.Account(userID)
	return err == nil && a.Admin && !a.Deactivated
}

// SetAdmin grants or revokes server administration.
func (s *Service) SetAdmin(userID string, admin bool) error {
	err := s.store.SetAccountAdmin(userID, admin)
	if errors.Is(err, ErrNotFound) {
		return mxerr.NotFound("unknown user")
	}
	if err != nil {
		return err
	}
	s.sessions.dropUser(userID, "") // cached sessions carry the flag
	return nil
}
