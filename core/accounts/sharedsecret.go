package accounts

import (
	"errors"
	"strings"
	"time"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/secret"
)

// Shared-secret registration is Synapse's admin API (GET/POST
// /_synapse/admin/v1/register) that Complement and provisioning tools use:
// the client fetches a nonce, then posts the new account with
// HMAC-SHA1(shared secret, nonce\0username\0password\0admin|notadmin[\0user_type]).

// NonceLifetime is how long a shared-secret registration nonce is valid.
const NonceLifetime = 60 * time.Second

// maxNonces bounds the nonces outstanding at once (they are unauthenticated).
const maxNonces = 1024

// SharedSecretRequest is the body of POST /_synapse/admin/v1/register.
type SharedSecretRequest struct {
	Nonce       string `json:"nonce"`
	Username    string `json:"username"`
	DisplayName string `json:"displayname"`
	Password    string `json:"password"`
	Admin       bool   `json:"admin"`
	UserType    string `json:"user_type"`
	MAC         string `json:"mac"`
}

func (s *Service) sharedSecretEnabled() error {
	if s.cfg.SharedSecret == "" {
		return mxerr.Unknown("Shared secret registration is not enabled")
	}
	return nil
}

// SharedSecretNonce answers GET /_synapse/admin/v1/register.
func (s *Service) SharedSecretNonce() (string, error) {
	if err := s.sharedSecretEnabled(); err != nil {
		return "", err
	}
	now := s.now()
	s.nonceMu.Lock()
	defer s.nonceMu.Unlock()
	if len(s.nonces) >= maxNonces {
		for n, exp := range s.nonces {
			if now.After(exp) {
				delete(s.nonces, n)
			}
		}
		if len(s.nonces) >= maxNonces {
			return "", mxerr.LimitExceeded(NonceLifetime.Milliseconds())
		}
	}
	n := ids.NewOpaqueID(32)
	s.nonces[n] = now.Add(NonceLifetime)
	return n, nil
}

// takeNonce consumes a nonce: each is good for one attempt.
func (s *Service) takeNonce(n string) bool {
	s.nonceMu.Lock()
	defer s.nonceMu.Unlock()
	exp, ok := s.nonces[n]
	delete(s.nonces, n)
	return ok && !s.now().After(exp)
}

// SharedSecretRegister answers POST /_synapse/admin/v1/register: it creates
// the account and logs it in on a new device. Registration mode does not
// apply: knowing the shared secret is administrator access.
func (s *Service) SharedSecretRegister(req SharedSecretRequest, ip string) (*LoginResponse, error) {
	if err := s.sharedSecretEnabled(); err != nil {
		return nil, err
	}
	if req.Nonce == "" || req.MAC == "" || req.Username == "" {
		return nil, mxerr.MissingParam("nonce, username and mac are required")
	}
	if !s.takeNonce(req.Nonce) {
		return nil, mxerr.Unknown("unrecognised nonce")
	}
	if req.Password == "" {
		return nil, mxerr.MissingParam("password is required")
	}
	if len(req.Password) > maxPasswordBytes || len(req.Username) > 512 {
		return nil, mxerr.InvalidParam("username or password too long")
	}
	switch req.UserType {
	case "", "bot", "support":
	default:
		return nil, mxerr.InvalidParam("invalid user_type")
	}
	want, err := secret.SharedSecretRegistrationMAC([]byte(s.cfg.SharedSecret), req.Nonce, req.Username, req.Password, req.Admin, req.UserType)
	if err != nil {
		return nil, err
	}
	if !secret.ConstantTimeEqualHex(want, req.MAC) {
		return nil, mxerr.Forbidden("HMAC incorrect")
	}
	lp, err := s.checkNewLocalpart(req.Username)
	if err != nil {
		return nil, err
	}
	hash, err := secret.HashPassword(req.Password)
	if err != nil {
		return nil, err
	}
	resp, err := s.createAccount(lp, hash, req.Admin, req.UserType, "", &RegisterRequest{}, ip)
	if errors.Is(err, ErrUserExists) {
		return nil, mxerr.UserInUse()
	}
	if err != nil {
		return nil, err
	}
	if dn := strings.TrimSpace(req.DisplayName); dn != "" {
		if err := s.setClassic(resp.UserID, "displayname", dn); err != nil {
			logHookErr("set display name", resp.UserID, err)
		}
	}
	return resp, nil
}
