package accounts

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/secret"
)

// LoginFlow is one entry of GET /login's flows.
type LoginFlow struct {
	Type string `json:"type"`
}

// LoginFlows are the login types Lichen supports (spec: "Login").
func (s *Service) LoginFlows() []LoginFlow { return []LoginFlow{{Type: AuthPassword}} }

// LoginRequest is the body of POST /login.
type LoginRequest struct {
	Type       string          `json:"type"`
	Identifier *UserIdentifier `json:"identifier"`
	// Deprecated top-level forms of the identifier.
	User    string `json:"user"`
	Medium  string `json:"medium"`
	Address string `json:"address"`

	Password                 string `json:"password"`
	Token                    string `json:"token"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
	RefreshToken             bool   `json:"refresh_token"`
}

// LoginResponse is the answer of /login and /register (and of shared-secret
// registration).
type LoginResponse struct {
	UserID       string `json:"user_id"`
	AccessToken  string `json:"access_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresInMS  int64  `json:"expires_in_ms,omitempty"`
	HomeServer   string `json:"home_server"`
	DeviceID     string `json:"device_id,omitempty"`
	WellKnown    any    `json:"well_known,omitempty"` // filled in by transport
}

// RefreshResponse is the answer of /refresh.
type RefreshResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresInMS  int64  `json:"expires_in_ms,omitempty"`
}

// Login performs POST /login with m.login.password (spec: "Login").
func (s *Service) Login(req LoginRequest, ip string) (*LoginResponse, error) {
	if req.Type != AuthPassword {
		return nil, mxerr.Unknown("unsupported login type")
	}
	if req.Identifier == nil && req.User == "" && req.Medium != "" {
		// Deprecated third-party form: Lichen binds no 3PIDs, and the spec
		// says an unknown 3PID is 403.
		return nil, mxerr.Forbidden("unknown third-party identifier")
	}
	userID, err := s.resolveUser(req.Identifier, req.User)
	if err != nil {
		return nil, err
	}
	if err := validDeviceID(req.DeviceID); err != nil {
		return nil, err
	}
	acct, err := s.findAccount(userID)
	if errors.Is(err, ErrNotFound) {
		burnPasswordHash(req.Password) // answer as slowly as for a real user
		return nil, mxerr.Forbidden("invalid username or password")
	}
	if err != nil {
		return nil, err
	}
	ok, rehash := checkPassword(acct.PasswordHash, req.Password)
	if !ok {
		return nil, mxerr.Forbidden("invalid username or password")
	}
	// Like Synapse, deactivation is disclosed only to the password's owner.
	if acct.Deactivated {
		return nil, userDeactivated()
	}
	resp, err := s.login(acct.UserID, req.DeviceID, req.InitialDeviceDisplayName, ip, req.RefreshToken, acct.PasswordHash)
	if err != nil {
		return nil, err
	}
	if rehash {
		// The stored hash uses older parameters (or bcrypt): upgrade it now
		// that the password is known, unless it changed meanwhile.
		if h, err := secret.HashPassword(req.Password); err == nil {
			if err := s.store.ReplacePasswordHash(acct.UserID, acct.PasswordHash, h); err != nil && !errors.Is(err, ErrConflict) {
				logHookErr("rehash password", acct.UserID, err)
			}
		}
	}
	return resp, nil
}

// login issues tokens for a device of an existing account. verifiedHash is
// the password hash that was checked ("" when none was).
func (s *Service) login(userID, deviceID, displayName, ip string, wantRefresh bool, verifiedHash string) (*LoginResponse, error) {
	if deviceID == "" {
		deviceID = ids.NewDeviceID()
	}
	now := s.nowMS()
	tok := s.newTokens(wantRefresh, now)
	created, err := s.store.CommitLogin(NewLogin{
		UserID:            userID,
		DeviceID:          deviceID,
		DeviceDisplayName: clampDeviceName(displayName),
		IP:                ip,
		Now:               now,
		VerifiedHash:      verifiedHash,
		Access:            tok.access,
		Refresh:           tok.refresh,
	})
	switch {
	case errors.Is(err, ErrDeactivated):
		return nil, userDeactivated()
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict):
		return nil, mxerr.Forbidden("invalid username or password")
	case err != nil:
		return nil, err
	}
	s.noteSeen(userID, deviceID, now)
	if created {
		s.deviceAdded(userID, deviceID)
	} else {
		// Spec ("Relationship between access tokens and devices"): reusing a
		// device ID invalidates the tokens previously assigned to it.
		s.sessions.dropUser(userID, deviceID)
	}
	return tok.response(userID, deviceID, s.cfg.ServerName), nil
}

// issued holds freshly generated tokens and their stored forms.
type issued struct {
	accessToken, refreshToken string
	access                    AccessToken
	refresh                   *RefreshToken
	lifetime                  time.Duration
}

func (t *issued) response(userID, deviceID, server string) *LoginResponse {
	return &LoginResponse{
		UserID:       userID,
		AccessToken:  t.accessToken,
		RefreshToken: t.refreshToken,
		ExpiresInMS:  t.lifetime.Milliseconds(),
		HomeServer:   server,
		DeviceID:     deviceID,
	}
}

// newTokens generates an access token, and a refresh token when the client
// supports them (spec: "Refreshing access tokens": clients that do not are
// given non-expiring tokens unless the server is configured otherwise).
func (s *Service) newTokens(wantRefresh bool, now int64) *issued {
	t := &issued{accessToken: secret.NewToken(secret.AccessTokenPrefix), lifetime: s.cfg.AccessTokenLifetime}
	t.access.Hash = secret.HashToken(t.accessToken)
	if wantRefresh {
		if t.lifetime <= 0 {
			t.lifetime = DefaultRefreshLifetime
		}
		t.refreshToken = secret.NewToken(secret.RefreshTokenPrefix)
		t.refresh = &RefreshToken{Hash: secret.HashToken(t.refreshToken), Access: t.access.Hash}
	}
	if t.lifetime > 0 {
		t.access.ExpiresTS = now + t.lifetime.Milliseconds()
	}
	return t
}

// Refresh performs POST /refresh: it rotates the refresh token (spec:
// "Refreshing access tokens"). The old access token is revoked at once; the
// old refresh token stays usable until the new access or refresh token is
// first used, so a client that lost the answer can repeat the call.
func (s *Service) Refresh(refreshToken string) (*RefreshResponse, error) {
	if refreshToken == "" {
		return nil, mxerr.MissingParam("refresh_token is required")
	}
	now := s.nowMS()
	t := s.newTokens(true, now)
	old, err := s.store.RotateRefresh(secret.HashToken(refreshToken), t.access, *t.refresh)
	if errors.Is(err, ErrNotFound) {
		return nil, mxerr.UnknownToken(false)
	}
	if err != nil {
		return nil, err
	}
	s.sessions.dropUser(old.UserID, old.DeviceID)
	return &RefreshResponse{AccessToken: t.accessToken, RefreshToken: t.refreshToken, ExpiresInMS: t.lifetime.Milliseconds()}, nil
}

// Authenticate resolves an access token to its session. Unknown or revoked
// tokens are 401 M_UNKNOWN_TOKEN; expired ones carry soft_logout: true
// (spec: "Soft logout").
func (s *Service) Authenticate(token string) (Session, error) {
	if token == "" {
		return Session{}, mxerr.UnknownToken(false)
	}
	h := secret.HashToken(token)
	now := s.nowMS()
	cs, gen, ok := s.sessions.get(h)
	if ok {
		if cs.expires != 0 && now >= cs.expires {
			return Session{}, mxerr.UnknownToken(true)
		}
		return cs.Session, nil
	}
	at, err := s.store.AccessTokenByHash(h)
	if errors.Is(err, ErrNotFound) {
		return Session{}, mxerr.UnknownToken(false)
	}
	if err != nil {
		return Session{}, err
	}
	if at.ExpiresTS != 0 && now >= at.ExpiresTS {
		return Session{}, mxerr.UnknownToken(true)
	}
	if at.PendingRefresh != (TokenHash{}) {
		if err := s.store.ConfirmRefresh(h); err != nil {
			return Session{}, err
		}
	}
	acct, err := s.store.Account(at.UserID)
	if errors.Is(err, ErrNotFound) || (err == nil && acct.Deactivated) {
		return Session{}, mxerr.UnknownToken(false)
	}
	if err != nil {
		return Session{}, err
	}
	sess := Session{UserID: at.UserID, DeviceID: at.DeviceID, Admin: acct.Admin}
	s.sessions.put(h, cachedSession{Session: sess, expires: at.ExpiresTS}, gen)
	return sess, nil
}

// Logout performs POST /logout: the caller's device is deleted with its
// tokens (spec: "the device associated with the access token is also
// deleted").
func (s *Service) Logout(sess Session) error {
	deleted, err := s.store.DeleteAccountDevices(sess.UserID, []string{sess.DeviceID})
	if err != nil {
		return err
	}
	s.sessions.dropUser(sess.UserID, sess.DeviceID)
	s.devicesDeleted(sess.UserID, deleted)
	return nil
}

// LogoutAll performs POST /logout/all: every device and token of the user.
func (s *Service) LogoutAll(sess Session) error {
	deleted, err := s.store.DeleteAccountDevices(sess.UserID, nil)
	if err != nil {
		return err
	}
	s.sessions.dropUser(sess.UserID, "")
	s.devicesDeleted(sess.UserID, deleted)
	return nil
}

// resolveUser turns an m.id.user identifier (or the deprecated top-level
// "user") into a full local user ID (spec: "Identifier types": the user
// ID or just its localpart).
func (s *Service) resolveUser(id *UserIdentifier, legacyUser string) (string, error) {
	user := legacyUser
	if id != nil {
		switch id.Type {
		case "m.id.user":
			user = id.User
		case "m.id.thirdparty", "m.id.phone":
			// Lichen binds no 3PIDs: every one is unknown, which is 403.
			return "", mxerr.Forbidden("unknown third-party identifier")
		default:
			return "", mxerr.Unknown("unknown identifier type")
		}
	}
	if user == "" {
		return "", mxerr.MissingParam("identifier.user is required")
	}
	if !strings.HasPrefix(user, "@") {
		if strings.ContainsRune(user, 0) || strings.ContainsRune(user, ':') {
			return "", mxerr.Forbidden("invalid username or password")
		}
		return s.userID(user), nil
	}
	_, server, err := ids.ParseUserID(user)
	if err != nil || server != s.cfg.ServerName {
		return "", mxerr.Forbidden("invalid username or password")
	}
	return user, nil
}

// findAccount looks up a local user, falling back to the lower-cased
// localpart: Lichen (like Synapse) registers lower-case IDs only, and
// people type "Alice".
func (s *Service) findAccount(userID string) (Account, error) {
	a, err := s.store.Account(userID)
	if !errors.Is(err, ErrNotFound) {
		return a, err
	}
	if lower := strings.ToLower(userID); lower != userID && strings.HasSuffix(userID, ":"+s.cfg.ServerName) {
		lp := strings.TrimSuffix(userID, ":"+s.cfg.ServerName)
		return s.store.Account(strings.ToLower(lp) + ":" + s.cfg.ServerName)
	}
	return a, err
}

// checkPassword verifies pw against a stored hash; an empty hash (no
// password) or an empty pw never matches.
func checkPassword(hash, pw string) (ok, rehash bool) {
	if hash == "" || pw == "" {
		burnPasswordHash(pw)
		return false, false
	}
	ok, rehash, err := secret.VerifyPassword(hash, pw)
	if err != nil {
		logHookErr("verify password", "", err)
		return false, false
	}
	return ok, rehash
}

var (
	dummyHashOnce sync.Once
	dummyHash     string
)

// burnPasswordHash spends the time of one password verification, so that
// "no such user" answers as slowly as "wrong password".
func burnPasswordHash(pw string) {
	dummyHashOnce.Do(func() { dummyHash, _ = secret.HashPassword("lichen dummy password") })
	_, _, _ = secret.VerifyPassword(dummyHash, pw)
}

// validDeviceID checks a client-chosen device ID: the store separates key
// parts with NUL, and IDs are shown to people, so control characters and
// overlong IDs are refused.
func validDeviceID(id string) error {
	if len(id) > 255 {
		return mxerr.InvalidParam("device_id is longer than 255 bytes")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return mxerr.InvalidParam("device_id contains control characters")
		}
	}
	return nil
}
