package transport

import (
	"encoding/json"
	"errors"

	"github.com/lichen-hs/lichen/core/accounts"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// AccountsAuth makes the account service the server's Authenticator:
// NewServer(cfg, transport.AccountsAuth{A: accountsService}).
type AccountsAuth struct{ A *accounts.Service }

// Authenticate resolves an access token and notes the device's activity
// (written at most once a minute per device).
func (a AccountsAuth) Authenticate(token string) (*Session, error) {
	return a.AuthenticateFrom(token, "")
}

// AuthenticateFrom is Authenticate for a request from ip, which becomes the
// device's last_seen_ip.
func (a AccountsAuth) AuthenticateFrom(token, ip string) (*Session, error) {
	sess, err := a.A.Authenticate(token)
	if err != nil {
		return nil, err
	}
	a.A.Seen(sess.UserID, sess.DeviceID, ip)
	return &Session{UserID: sess.UserID, DeviceID: sess.DeviceID, Admin: sess.Admin}, nil
}

// accountSession is the caller as the account service sees it.
func accountSession(r *Request) accounts.Session {
	return accounts.Session{UserID: r.Session.UserID, DeviceID: r.Session.DeviceID, Admin: r.Session.Admin}
}

// remoteIP is the client's address, used for rate limits and last_seen_ip.
func remoteIP(r *Request) string { return r.Ctx.RemoteIP().String() }

// uiaAnswer turns a *accounts.UIAChallenge into the 401 answer the spec
// describes ("User-interactive API in the REST API").
func uiaAnswer(resp any, err error) (any, error) {
	var ch *accounts.UIAChallenge
	if errors.As(err, &ch) {
		return Status{Code: 401, Body: ch}, nil
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// MountAccounts registers registration, login, token, account and device
// endpoints (spec: "Client Authentication", "Account registration and
// management", modules/device_management) and Synapse's shared-secret
// registration admin API.
func (s *Server) MountAccounts(a *accounts.Service) {
	empty := func(err error) (any, error) {
		if err != nil {
			return nil, err
		}
		return map[string]any{}, nil
	}
	withWellKnown := func(resp *accounts.LoginResponse) *accounts.LoginResponse {
		if resp != nil && resp.AccessToken != "" && s.cfg.PublicBaseURL != "" {
			resp.WellKnown = map[string]any{"m.homeserver": map[string]string{"base_url": s.cfg.PublicBaseURL}}
		}
		return resp
	}

	// Login and tokens.
	s.r.client("GET", "/login", authNone, func(r *Request) (any, error) {
		return map[string]any{"flows": a.LoginFlows()}, nil
	})
	s.r.client("POST", "/login", authNone, func(r *Request) (any, error) {
		ip := remoteIP(r)
		if err := s.limiter.allow("login", ip); err != nil {
			return nil, err
		}
		var req accounts.LoginRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		resp, err := a.Login(req, ip)
		if err != nil {
			return nil, err
		}
		return withWellKnown(resp), nil
	})
	// /refresh is not rate-limited: refresh tokens cannot be guessed, and
	// a refused refresh logs a client out.
	s.r.client("POST", "/refresh", authNone, func(r *Request) (any, error) {
		var req struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return a.Refresh(req.RefreshToken)
	})
	s.r.client("POST", "/logout", authRequired, func(r *Request) (any, error) {
		return empty(a.Logout(accountSession(r)))
	})
	s.r.client("POST", "/logout/all", authRequired, func(r *Request) (any, error) {
		return empty(a.LogoutAll(accountSession(r)))
	})

	// Registration.
	s.r.client("POST", "/register", authNone, func(r *Request) (any, error) {
		ip := remoteIP(r)
		if err := s.limiter.allow("register", ip); err != nil {
			return nil, err
		}
		var req accounts.RegisterRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		resp, err := a.Register(req, r.Query("kind"), ip)
		return uiaAnswer(withWellKnown(resp), err)
	})
	s.r.client("GET", "/register/available", authNone, func(r *Request) (any, error) {
		if err := a.Available(r.Query("username")); err != nil {
			return nil, err
		}
		return map[string]bool{"available": true}, nil
	})
	s.r.add("GET", "/_matrix/client/v1/register/m.login.registration_token/validity", authNone, func(r *Request) (any, error) {
		// Spec: rate-limit this endpoint against brute force. The login
		// class, so checking a token does not use up the registration budget.
		if err := s.limiter.allow("login", remoteIP(r)); err != nil {
			return nil, err
		}
		ok, err := a.RegistrationTokenValid(r.Query("token"))
		if err != nil {
			return nil, err
		}
		return map[string]bool{"valid": ok}, nil
	})

	// Account management.
	s.r.client("GET", "/account/whoami", authRequired, func(r *Request) (any, error) {
		return a.Whoami(accountSession(r)), nil
	})
	s.r.client("POST", "/account/password", authRequired, func(r *Request) (any, error) {
		var req accounts.PasswordRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return uiaAnswer(empty(a.ChangePassword(accountSession(r), req)))
	})
	s.r.client("POST", "/account/deactivate", authRequired, func(r *Request) (any, error) {
		var req accounts.DeactivateRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return uiaAnswer(a.Deactivate(accountSession(r), req))
	})

	// Devices.
	s.r.client("GET", "/devices", authRequired, func(r *Request) (any, error) {
		ds, err := a.Devices(r.Session.UserID)
		if err != nil {
			return nil, err
		}
		if ds == nil {
			ds = []accounts.DeviceInfo{}
		}
		return map[string]any{"devices": ds}, nil
	})
	s.r.client("GET", "/devices/{deviceId}", authRequired, func(r *Request) (any, error) {
		return a.Device(r.Session.UserID, r.Param("deviceId"))
	})
	s.r.client("PUT", "/devices/{deviceId}", authRequired, func(r *Request) (any, error) {
		var req struct {
			DisplayName *string `json:"display_name"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return empty(a.SetDeviceDisplayName(r.Session.UserID, r.Param("deviceId"), req.DisplayName))
	})
	s.r.client("DELETE", "/devices/{deviceId}", authRequired, func(r *Request) (any, error) {
		var req accounts.PasswordRequest // only its auth is read
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return uiaAnswer(empty(a.DeleteDevices(accountSession(r), []string{r.Param("deviceId")}, req.Auth)))
	})
	s.r.client("POST", "/delete_devices", authRequired, func(r *Request) (any, error) {
		var req struct {
			Devices *[]string       `json:"devices"`
			Auth    json.RawMessage `json:"auth"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		if req.Devices == nil {
			return nil, mxerr.MissingParam("devices is required")
		}
		return uiaAnswer(empty(a.DeleteDevices(accountSession(r), *req.Devices, req.Auth)))
	})

	// Synapse's shared-secret registration (Complement, provisioning tools).
	s.r.add("GET", "/_synapse/admin/v1/register", authNone, func(r *Request) (any, error) {
		n, err := a.SharedSecretNonce()
		if err != nil {
			return nil, err
		}
		return map[string]string{"nonce": n}, nil
	})
	// Not rate-limited: it needs the shared secret (an HMAC nobody can
	// forge), and test suites create many users in a burst.
	s.r.add("POST", "/_synapse/admin/v1/register", authNone, func(r *Request) (any, error) {
		var req accounts.SharedSecretRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return a.SharedSecretRegister(req, remoteIP(r))
	})

	s.mountProfile(a)
}
