package accounts

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// Auth types Lichen offers (spec: "Authentication types").
const (
	AuthPassword          = "m.login.password"
	AuthDummy             = "m.login.dummy"
	AuthRegistrationToken = "m.login.registration_token"
)

// UIASessionLifetime is how long a User-Interactive Authentication session
// may take from its first request to its last.
const UIASessionLifetime = 30 * time.Minute

// UIAFlow is one flow of stages.
type UIAFlow struct {
	Stages []string `json:"stages"`
}

// UIAChallenge is the body of the 401 answer that asks for (more)
// authentication (spec: "User-interactive API in the REST API"). Core
// returns it as an error; transport sends it with status 401.
type UIAChallenge struct {
	Flows     []UIAFlow                 `json:"flows"`
	Params    map[string]map[string]any `json:"params"`
	Session   string                    `json:"session"`
	Completed []string                  `json:"completed"`
	Errcode   string                    `json:"errcode,omitempty"`
	Message   string                    `json:"error,omitempty"`
}

func (c *UIAChallenge) Error() string {
	if c.Errcode != "" {
		return "user-interactive authentication required: " + c.Errcode + ": " + c.Message
	}
	return "user-interactive authentication required"
}

// UserIdentifier identifies a user in login and m.login.password
// (spec: "Identifier types").
type UserIdentifier struct {
	Type    string `json:"type"`
	User    string `json:"user,omitempty"`
	Medium  string `json:"medium,omitempty"`
	Address string `json:"address,omitempty"`
	Country string `json:"country,omitempty"`
	Phone   string `json:"phone,omitempty"`
}

// authDict is the "auth" object of a request.
type authDict struct {
	Type    string `json:"type"`
	Session string `json:"session"`
	// m.login.password
	Identifier *UserIdentifier `json:"identifier"`
	User       string          `json:"user"` // deprecated form
	Password   string          `json:"password"`
	// m.login.registration_token
	Token string `json:"token"`
}

// uiaRequest describes one request to an endpoint protected by UIA.
type uiaRequest struct {
	// binding names what the session authorises: endpoint, user and the
	// parameters that matter. Spec: clients must not change the request
	// between stages; a session started for one operation (or one user)
	// is refused for another.
	binding string
	user    string // the user m.login.password must prove to be ("" when not offered)
	flows   [][]string
	auth    json.RawMessage
}

// runUIA advances the session that r.auth names (or a new one) by the stage
// it submits. It returns the session once some flow is complete, and
// otherwise a *UIAChallenge (or another error). The caller performs the
// operation and then calls finishUIA; when the operation fails the session
// stays, so the client can retry without redoing the stages.
func (s *Service) runUIA(r uiaRequest) (*UIASession, error) {
	var ad authDict
	if len(r.auth) > 0 && string(r.auth) != "null" {
		if err := json.Unmarshal(r.auth, &ad); err != nil {
			return nil, mxerr.BadJSON("auth must be an object with string fields")
		}
	}
	now := s.nowMS()
	var sess UIASession
	if ad.Session != "" {
		var err error
		sess, err = s.store.UIASession(ad.Session)
		if errors.Is(err, ErrNotFound) || (err == nil && now-sess.CreatedTS > UIASessionLifetime.Milliseconds()) {
			// Synapse answers an unknown session the same way.
			return nil, mxerr.Unknown("unknown or expired user-interactive authentication session")
		}
		if err != nil {
			return nil, err
		}
		if sess.Binding != r.binding {
			return nil, mxerr.Forbidden("the requested operation changed during the user-interactive authentication session")
		}
	} else {
		sess = UIASession{ID: ids.NewOpaqueID(24), Binding: r.binding, CreatedTS: now}
		s.sweepUIA(now)
	}

	if ad.Type != "" && !slices.Contains(sess.Completed, ad.Type) {
		// Completed stages are not checked again (spec: "Completed stages
		// cannot be retried by clients").
		if !stageAllowed(r.flows, sess.Completed, ad.Type) {
			if err := s.store.PutUIASession(sess); err != nil {
				return nil, err
			}
			return nil, challenge(r.flows, &sess, mxerr.New(400, "M_UNRECOGNIZED", "auth type "+ad.Type+" is not offered at this stage"))
		}
		if err := s.checkStage(r, &sess, &ad); err != nil {
			var ab uiaAbort
			if errors.As(err, &ab) {
				return nil, ab.e
			}
			var me *mxerr.Error
			if !errors.As(err, &me) || me.Status >= 500 {
				return nil, err
			}
			if perr := s.store.PutUIASession(sess); perr != nil {
				return nil, perr
			}
			return nil, challenge(r.flows, &sess, me)
		}
		sess.Completed = append(sess.Completed, ad.Type)
	}
	if err := s.store.PutUIASession(sess); err != nil {
		return nil, err
	}
	if flowComplete(r.flows, sess.Completed) {
		return &sess, nil
	}
	return nil, challenge(r.flows, &sess, nil)
}

// finishUIA deletes a session whose operation succeeded.
func (s *Service) finishUIA(sess *UIASession) {
	if err := s.store.DeleteUIASession(sess.ID); err != nil {
		logHookErr("delete uia session", "", err)
	}
}

func challenge(flows [][]string, sess *UIASession, e *mxerr.Error) *UIAChallenge {
	c := &UIAChallenge{
		Flows:     make([]UIAFlow, len(flows)),
		Params:    map[string]map[string]any{},
		Session:   sess.ID,
		Completed: append([]string{}, sess.Completed...),
	}
	for i, f := range flows {
		c.Flows[i] = UIAFlow{Stages: f}
	}
	if e != nil {
		c.Errcode, c.Message = e.Code, e.Message
	}
	return c
}

// stageAllowed reports whether typ is the next stage of some flow whose
// earlier stages are all completed (spec: a flow's stages must be completed
// in order).
func stageAllowed(flows [][]string, completed []string, typ string) bool {
	for _, f := range flows {
		for i, st := range f {
			if st != typ {
				continue
			}
			ok := true
			for _, prev := range f[:i] {
				if !slices.Contains(completed, prev) {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// flowComplete reports whether every stage of some flow is completed.
func flowComplete(flows [][]string, completed []string) bool {
	for _, f := range flows {
		done := true
		for _, st := range f {
			if !slices.Contains(completed, st) {
				done = false
				break
			}
		}
		if done {
			return true
		}
	}
	return false
}

// uiaAbort is a stage failure that ends the request with an ordinary error
// instead of a 401 challenge.
type uiaAbort struct{ e *mxerr.Error }

func (a uiaAbort) Error() string { return a.e.Error() }

// checkStage verifies one submitted stage. A *mxerr.Error (below 500) is an
// authentication failure the client may retry; it goes into the 401 body.
func (s *Service) checkStage(r uiaRequest, sess *UIASession, ad *authDict) error {
	switch ad.Type {
	case AuthDummy:
		return nil
	case AuthPassword:
		if r.user == "" {
			return mxerr.Forbidden("password authentication is not possible here")
		}
		user := r.user
		if ad.Identifier != nil || ad.User != "" {
			u, err := s.resolveUser(ad.Identifier, ad.User)
			if err != nil {
				return err
			}
			user = u
		}
		acct, err := s.findAccount(user)
		if errors.Is(err, ErrNotFound) || (err == nil && acct.UserID != r.user) {
			// Authenticating as someone else is refused outright (403, as
			// Synapse does), without checking the password: no oracle.
			return uiaAbort{mxerr.Forbidden("the authenticated user does not match the requester")}
		}
		if err != nil {
			return err
		}
		if ok, _ := checkPassword(acct.PasswordHash, ad.Password); !ok {
			return mxerr.Forbidden("invalid username or password")
		}
		return nil
	case AuthRegistrationToken:
		t, ok, err := s.usableRegistrationToken(ad.Token)
		if err != nil {
			return err
		}
		if !ok {
			return mxerr.New(401, "M_UNAUTHORIZED", "invalid registration token")
		}
		sess.RegToken = t.Token
		return nil
	}
	return mxerr.New(400, "M_UNRECOGNIZED", "unsupported auth type")
}

// sweepUIASessionsEvery bounds how often expired sessions are deleted.
const sweepUIASessionsEvery = 10 * time.Minute

func (s *Service) sweepUIA(now int64) {
	s.sweepMu.Lock()
	t := time.UnixMilli(now)
	if t.Sub(s.lastSweep) < sweepUIASessionsEvery {
		s.sweepMu.Unlock()
		return
	}
	s.lastSweep = t
	s.sweepMu.Unlock()
	if err := s.store.DeleteUIASessionsBefore(now - UIASessionLifetime.Milliseconds()); err != nil {
		logHookErr("sweep uia sessions", "", err)
	}
}

// WithPassword runs write behind User-Interactive Authentication by the
// session user's password, for endpoints outside this package that the
// spec puts behind UIA (keys/device_signing/upload). binding names the
// operation and its parameters, so a session completed for one request
// cannot authorise another.
func (s *Service) WithPassword(sess Session, binding string, auth json.RawMessage, write func() error) error {
	u, err := s.runUIA(uiaRequest{
		binding: binding + "\x00" + sess.UserID,
		user:    sess.UserID,
		flows:   [][]string{{AuthPassword}},
		auth:    auth,
	})
	if err != nil {
		return err
	}
	if err := write(); err != nil {
		return err
	}
	s.finishUIA(u)
	return nil
}
