package accountdata

import (
	"encoding/json"
	"sync"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/pushrules"
)

// Push rules (spec "Push Rules: API", pushrules.yaml). The user's changes
// are one stored blob (pushrules.UserRules); every change also rewrites the
// user's global m.push_rules account data in the same transaction, so that
// /sync reports it like any other account data (spec "Push Rules: Events").

// UserRules is the user's stored push-rule state (nil-safe zero value for
// a user who changed nothing).
func (s *Service) UserRules(user string) (*pushrules.UserRules, error) {
	blob, err := s.store.PushRules(user)
	if err != nil {
		return nil, err
	}
	return decodeRules(blob)
}

func decodeRules(blob []byte) (*pushrules.UserRules, error) {
	u := &pushrules.UserRules{}
	if len(blob) == 0 {
		return u, nil
	}
	if err := json.Unmarshal(blob, u); err != nil {
		return nil, err
	}
	return u, nil
}

// Ruleset is the user's effective rule set, for the push evaluator. It is
// cached in memory and refreshed after each change; callers must not
// modify it.
func (s *Service) Ruleset(user string) (*pushrules.Ruleset, error) {
	if rs := s.rules.get(user); rs != nil {
		return rs, nil
	}
	gen := s.rules.generation()
	u, err := s.UserRules(user)
	if err != nil {
		return nil, err
	}
	rs := u.Effective(user)
	s.rules.put(user, &rs, gen)
	return &rs, nil
}

// PushRules is the body of GET /pushrules/: {"global": ruleset}.
func (s *Service) PushRules(user string) (pushrules.Content, error) {
	rs, err := s.Ruleset(user)
	if err != nil {
		return pushrules.Content{}, err
	}
	return pushrules.Content{Global: *rs}, nil
}

func (s *Service) pushRulesContent(user string) (json.RawMessage, error) {
	c, err := s.PushRules(user)
	if err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// PushRule is GET /pushrules/global/{kind}/{ruleId}.
func (s *Service) PushRule(user, kind, ruleID string) (pushrules.Rule, error) {
	u, err := s.UserRules(user)
	if err != nil {
		return pushrules.Rule{}, err
	}
	return u.Get(user, kind, ruleID)
}

// PushRuleEnabled is GET .../{ruleId}/enabled.
func (s *Service) PushRuleEnabled(user, kind, ruleID string) (bool, error) {
	u, err := s.UserRules(user)
	if err != nil {
		return false, err
	}
	return u.Enabled(kind, ruleID)
}

// PushRuleActions is GET .../{ruleId}/actions.
func (s *Service) PushRuleActions(user, kind, ruleID string) ([]pushrules.Action, error) {
	u, err := s.UserRules(user)
	if err != nil {
		return nil, err
	}
	return u.Actions(kind, ruleID)
}

// PutPushRule is PUT /pushrules/global/{kind}/{ruleId} with the raw body
// and the before/after query parameters.
func (s *Service) PutPushRule(user, kind, ruleID string, body []byte, before, after string) error {
	if len(body) == 0 {
		return mxerr.NotJSON("request body must be a JSON object")
	}
	return s.updateRules(user, func(u *pushrules.UserRules) error { return u.Put(kind, ruleID, body, before, after) })
}

// DeletePushRule is DELETE /pushrules/global/{kind}/{ruleId}.
func (s *Service) DeletePushRule(user, kind, ruleID string) error {
	return s.updateRules(user, func(u *pushrules.UserRules) error { return u.Delete(kind, ruleID) })
}

// SetPushRuleEnabled is PUT .../{ruleId}/enabled.
func (s *Service) SetPushRuleEnabled(user, kind, ruleID string, enabled bool) error {
	return s.updateRules(user, func(u *pushrules.UserRules) error { return u.SetEnabled(kind, ruleID, enabled) })
}

// SetPushRuleActions is PUT .../{ruleId}/actions.
func (s *Service) SetPushRuleActions(user, kind, ruleID string, actions []pushrules.Action) error {
	return s.updateRules(user, func(u *pushrules.UserRules) error { return u.SetActions(kind, ruleID, actions) })
}

// updateRules applies op to the stored rules inside the store transaction
// (so concurrent changes from two devices do not lose one) and publishes
// the new effective set as m.push_rules.
func (s *Service) updateRules(user string, op func(*pushrules.UserRules) error) error {
	_, err := s.store.UpdatePushRules(user, func(old []byte) ([]byte, []byte, error) {
		u, err := decodeRules(old)
		if err != nil {
			return nil, nil, err
		}
		if err := op(u); err != nil {
			return nil, nil, err
		}
		blob, err := json.Marshal(u)
		if err != nil {
			return nil, nil, err
		}
		ad, err := json.Marshal(pushrules.Content{Global: u.Effective(user)})
		if err != nil {
			return nil, nil, err
		}
		return blob, ad, nil
	})
	s.rules.drop(user) // also after a failure: the cache may be stale either way
	if err != nil {
		return err
	}
	s.hub.Wake(user)
	return nil
}

// rulesCache holds effective rule sets. A load that raced with a change
// (the generation moved) is not cached.
type rulesCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]*cachedRules
}

type cachedRules struct{ rs *pushrules.Ruleset }

// maxCachedRules bounds the cache; a board has few users, and when it is
// full it is simply emptied.
const maxCachedRules = 1024

func (c *rulesCache) get(user string) *pushrules.Ruleset {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[user]; e != nil {
		return e.rs
	}
	return nil
}

func (c *rulesCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *rulesCache) put(user string, rs *pushrules.Ruleset, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= maxCachedRules {
		clear(c.m)
	}
	c.m[user] = &cachedRules{rs: rs}
}

func (c *rulesCache) drop(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, user)
}
