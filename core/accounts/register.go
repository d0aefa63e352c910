package accounts

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/secret"
)

// RegisterRequest is the body of POST /register.
type RegisterRequest struct {
	Auth                     json.RawMessage `json:"auth"`
	Username                 string          `json:"username"`
	Password                 string          `json:"password"`
	DeviceID                 string          `json:"device_id"`
	InitialDeviceDisplayName string          `json:"initial_device_display_name"`
	InhibitLogin             bool            `json:"inhibit_login"`
	RefreshToken             bool            `json:"refresh_token"`
}

// Register performs POST /register (spec: "Account registration"). kind is
// the query parameter ("" means user). ip is recorded on the new device.
func (s *Service) Register(req RegisterRequest, kind, ip string) (*LoginResponse, error) {
	switch kind {
	case "", "user":
	case "guest":
		return nil, mxerr.New(403, "M_GUEST_ACCESS_FORBIDDEN", "guest accounts are not supported")
	default:
		return nil, mxerr.InvalidParam("kind must be user or guest")
	}
	flows, err := s.registerFlows()
	if err != nil {
		return nil, err
	}
	if err := validDeviceID(req.DeviceID); err != nil {
		return nil, err
	}
	if len(req.Password) > maxPasswordBytes {
		return nil, mxerr.InvalidParam("password is longer than 512 bytes")
	}
	// Spec: the username checks come before User-Interactive Authentication.
	var localpart string
	if req.Username != "" {
		if localpart, err = s.checkNewLocalpart(req.Username); err != nil {
			return nil, err
		}
	}
	u, err := s.runUIA(uiaRequest{binding: "register", flows: flows, auth: req.Auth})
	if err != nil {
		return nil, err
	}
	if req.Password == "" {
		// Checked after UIA as Synapse does: clients often discover the
		// flows with an empty body. The session stays for the retry.
		return nil, mxerr.MissingParam("password is required")
	}
	admin := false
	if u.RegToken != "" {
		t, err := s.store.RegistrationToken(u.RegToken)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		admin = t.Admin
	}
	hash, err := secret.HashPassword(req.Password)
	if err != nil {
		return nil, err
	}
	var resp *LoginResponse
	for attempt := 0; ; attempt++ {
		lp := localpart
		if lp == "" {
			lp = strings.ToLower(ids.NewDeviceID()) // 10 random letters
		}
		resp, err = s.createAccount(lp, hash, admin, "", u.RegToken, &req, ip)
		if errors.Is(err, ErrUserExists) && localpart == "" && attempt < 3 {
			continue
		}
		break
	}
	switch {
	case errors.Is(err, ErrUserExists):
		return nil, mxerr.UserInUse()
	case errors.Is(err, ErrTokenUnusable):
		// The token was used up (or expired) since its stage was completed:
		// the stage has to be done again with another token.
		u.Completed = removeString(u.Completed, AuthRegistrationToken)
		u.RegToken = ""
		if perr := s.store.PutUIASession(*u); perr != nil {
			return nil, perr
		}
		return nil, challenge(flows, u, mxerr.New(401, "M_UNAUTHORIZED", "the registration token is no longer valid"))
	case err != nil:
		return nil, err
	}
	s.finishUIA(u)
	return resp, nil
}

// createAccount creates an account with a default profile and, unless req
// is nil or asks for inhibit_login, its first device and tokens.
func (s *Service) createAccount(localpart, hash string, admin bool, userType, regToken string, req *RegisterRequest, ip string) (*LoginResponse, error) {
	userID := s.userID(localpart)
	now := s.nowMS()
	na := NewAccount{
		Account: Account{UserID: userID, PasswordHash: hash, Admin: admin, UserType: userType, CreatedTS: now},
		// Synapse's default: new users are shown by their localpart.
		Profile:  Profile{DisplayName: localpart},
		RegToken: regToken,
		Now:      now,
	}
	var tok *issued
	if req != nil && !req.InhibitLogin {
		deviceID := req.DeviceID
		if deviceID == "" {
			deviceID = ids.NewDeviceID()
		}
		tok = s.newTokens(req.RefreshToken, now)
		na.Login = &NewLogin{
			UserID: userID, DeviceID: deviceID, DeviceDisplayName: clampDeviceName(req.InitialDeviceDisplayName),
			IP: ip, Now: now, Access: tok.access, Refresh: tok.refresh,
		}
	}
	if _, err := s.store.CreateAccount(na); err != nil {
		return nil, err
	}
	if na.Login == nil {
		return &LoginResponse{UserID: userID, HomeServer: s.cfg.ServerName}, nil
	}
	s.noteSeen(userID, na.Login.DeviceID, now)
	s.deviceAdded(userID, na.Login.DeviceID)
	return tok.response(userID, na.Login.DeviceID, s.cfg.ServerName), nil
}

// registerFlows are the UIA flows of /register in the configured mode.
func (s *Service) registerFlows() ([][]string, error) {
	switch s.cfg.Registration {
	case ModeOpen:
		return [][]string{{AuthDummy}, {AuthRegistrationToken}}, nil
	case ModeToken:
		return [][]string{{AuthRegistrationToken}}, nil
	}
	ok, err := s.bootstrapPending()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.Forbidden("registration is closed")
	}
	return [][]string{{AuthRegistrationToken}}, nil
}

// checkNewLocalpart maps a requested username onto a localpart and checks
// it can be registered: lower-cased (as Synapse does, and clients expect),
// valid under the user ID grammar, not reserved and not taken.
func (s *Service) checkNewLocalpart(username string) (string, error) {
	lp := strings.ToLower(username)
	if err := ids.ValidNewLocalpart(lp, s.cfg.ServerName); err != nil {
		return "", err
	}
	if strings.HasPrefix(lp, "_") {
		// Synapse reserves these for application services.
		return "", mxerr.InvalidUsername("user IDs starting with '_' are reserved")
	}
	_, err := s.store.Account(s.userID(lp))
	switch {
	case err == nil:
		return "", mxerr.UserInUse()
	case !errors.Is(err, ErrNotFound):
		return "", err
	}
	return lp, nil
}

// Available answers GET /register/available.
func (s *Service) Available(username string) error {
	if username == "" {
		return mxerr.MissingParam("username is required")
	}
	_, err := s.checkNewLocalpart(username)
	return err
}

// CreateUser creates an account without a device (the CLI's "user add").
func (s *Service) CreateUser(localpart, password string, admin bool) error {
	lp, err := s.checkNewLocalpart(localpart)
	if err != nil {
		return err
	}
	if password == "" || len(password) > maxPasswordBytes {
		return mxerr.InvalidParam("password must be 1 to 512 bytes")
	}
	hash, err := secret.HashPassword(password)
	if err != nil {
		return err
	}
	_, err = s.createAccount(lp, hash, admin, "", "", nil, "")
	if errors.Is(err, ErrUserExists) {
		return mxerr.UserInUse()
	}
	return err
}

// maxRegistrationToken is the spec's limit on registration token length.
const maxRegistrationToken = 64

// validRegistrationTokenSyntax: the Opaque Identifier Grammar, 1–64 chars
// (spec: "Token-authenticated registration").
func validRegistrationTokenSyntax(t string) bool {
	if t == "" || len(t) > maxRegistrationToken {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// usableRegistrationToken looks a token up and decides whether it can
// register an account now, in the configured mode.
func (s *Service) usableRegistrationToken(token string) (RegistrationToken, bool, error) {
	if !validRegistrationTokenSyntax(token) {
		return RegistrationToken{}, false, nil
	}
	t, err := s.store.RegistrationToken(token)
	if errors.Is(err, ErrNotFound) {
		return t, false, nil
	}
	if err != nil {
		return t, false, err
	}
	if s.cfg.Registration == ModeClosed && !t.Bootstrap {
		return t, false, nil
	}
	has, err := s.store.HasAccounts()
	if err != nil {
		return t, false, err
	}
	return t, t.Usable(s.nowMS(), has), nil
}

// RegistrationTokenValid answers GET /v1/register/m.login.registration_token/validity.
func (s *Service) RegistrationTokenValid(token string) (bool, error) {
	if s.cfg.Registration == ModeClosed {
		ok, err := s.bootstrapPending()
		if err != nil {
			return false, err
		}
		if !ok {
			return false, mxerr.Forbidden("registration is not enabled on this homeserver")
		}
	}
	if token == "" {
		return false, mxerr.MissingParam("token is required")
	}
	_, ok, err := s.usableRegistrationToken(token)
	return ok, err
}

// bootstrapPending reports whether a usable bootstrap token exists.
func (s *Service) bootstrapPending() (bool, error) {
	t, err := s.findBootstrap()
	return t != "", err
}

func (s *Service) findBootstrap() (string, error) {
	has, err := s.store.HasAccounts()
	if err != nil || has {
		return "", err
	}
	ts, err := s.store.RegistrationTokens()
	if err != nil {
		return "", err
	}
	now := s.nowMS()
	for _, t := range ts {
		if t.Bootstrap && t.Usable(now, false) {
			return t.Token, nil
		}
	}
	return "", nil
}

// EnsureBootstrap returns the one-time registration token that makes the
// first account a server admin, creating it if needed, while the server
// has no account at all; afterwards it returns "". The server prints the
// token at every start until it is used (DESIGN.md "Config").
func (s *Service) EnsureBootstrap() (token string, created bool, err error) {
	has, err := s.store.HasAccounts()
	if err != nil || has {
		return "", false, err
	}
	if t, err := s.findBootstrap(); err != nil || t != "" {
		return t, false, err
	}
	one := 1
	t := RegistrationToken{
		Token:       ids.NewOpaqueID(32),
		UsesAllowed: &one,
		Admin:       true,
		Bootstrap:   true,
		CreatedTS:   s.nowMS(),
	}
	if err := s.store.CreateRegistrationToken(t); err != nil {
		return "", false, err
	}
	return t.Token, true, nil
}

// CreateRegistrationToken stores a registration token; an empty t.Token is
// generated. It returns the token.
func (s *Service) CreateRegistrationToken(t RegistrationToken) (string, error) {
	if t.Token == "" {
		t.Token = ids.NewOpaqueID(16)
	} else if !validRegistrationTokenSyntax(t.Token) {
		return "", mxerr.InvalidParam("registration tokens are 1 to 64 characters of [A-Za-z0-9._~-]")
	}
	if t.UsesAllowed != nil && *t.UsesAllowed < 0 {
		return "", mxerr.InvalidParam("uses_allowed must not be negative")
	}
	t.Completed, t.Bootstrap = 0, false
	t.CreatedTS = s.nowMS()
	err := s.store.CreateRegistrationToken(t)
	if errors.Is(err, ErrExists) {
		return "", mxerr.InvalidParam("registration token already exists")
	}
	return t.Token, err
}

func removeString(list []string, v string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}
