// Package accounts is Lichen's account service: registration through the
// User-Interactive Authentication API and registration tokens, password
// login, access and refresh tokens, devices, password changes,
// deactivation, profiles and Synapse's shared-secret registration.
//
// Spec: client-server-api "Client Authentication" (the legacy API),
// "Account registration and management", "Profiles", and
// modules/device_management.
package accounts

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// Registration modes (Config.Registration).
const (
	ModeClosed = "closed" // only the bootstrap token registers (and admins, via shared secret or CLI)
	ModeToken  = "token"  // m.login.registration_token
	ModeOpen   = "open"   // m.login.dummy, or a token
)

// DefaultRefreshLifetime is the access-token lifetime given to clients that
// ask for refresh tokens when Config.AccessTokenLifetime is 0.
const DefaultRefreshLifetime = 5 * time.Minute

// Config configures the account service.
type Config struct {
	ServerName   string
	Registration string // ModeClosed (also for "" or anything unknown), ModeToken or ModeOpen
	SharedSecret string // enables /_synapse/admin/v1/register when set
	// AccessTokenLifetime is how long access tokens live. 0: tokens do not
	// expire, except for clients that ask for refresh tokens, whose tokens
	// live DefaultRefreshLifetime.
	AccessTokenLifetime time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// RoomHooks is how accounts reaches the room engine (implemented by the
// rooms service).
type RoomHooks interface {
	// UpdateProfile propagates a changed display name or avatar to the
	// user's joined rooms (spec: "Events on Change of Profile Information").
	UpdateProfile(user string) error
	// LeaveAll makes a deactivated user leave every room.
	LeaveAll(user string) error
}

// DeviceObserver learns about devices appearing and disappearing, after
// the change is committed (end-to-end encryption drops the keys of deleted
// devices and announces device-list changes).
type DeviceObserver interface {
	DeviceAdded(userID, deviceID string)
	DevicesDeleted(userID string, deviceIDs []string)
}

// Session is an authenticated caller.
type Session struct {
	UserID   string
	DeviceID string
	Admin    bool
}

// Service is the account service. It is safe for concurrent use.
type Service struct {
	store Store
	cfg   Config
	rooms RoomHooks
	now   func() time.Time

	obsMu sync.RWMutex
	obs   DeviceObserver

	sessions sessionCache

	seenMu sync.Mutex
	seen   map[string]int64 // user\0device -> last TouchDevice (ms)

	nonceMu sync.Mutex
	nonces  map[string]time.Time // shared-secret nonce -> expiry

	sweepMu   sync.Mutex
	lastSweep time.Time // of expired UIA sessions
}

// New makes the account service. rooms may be nil (the CLI).
func New(store Store, cfg Config, rooms RoomHooks) *Service {
	switch cfg.Registration {
	case ModeOpen, ModeToken:
	default:
		cfg.Registration = ModeClosed
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Service{
		store:    store,
		cfg:      cfg,
		rooms:    rooms,
		now:      now,
		sessions: sessionCache{m: map[TokenHash]cachedSession{}},
		seen:     map[string]int64{},
		nonces:   map[string]time.Time{},
	}
}

// SetDeviceObserver sets who is told about added and deleted devices.
func (s *Service) SetDeviceObserver(o DeviceObserver) {
	s.obsMu.Lock()
	s.obs = o
	s.obsMu.Unlock()
}

// ServerName is the server's name.
func (s *Service) ServerName() string { return s.cfg.ServerName }

func (s *Service) nowMS() int64 { return s.now().UnixMilli() }

func (s *Service) deviceAdded(user, device string) {
	s.obsMu.RLock()
	o := s.obs
	s.obsMu.RUnlock()
	if o != nil {
		o.DeviceAdded(user, device)
	}
}

func (s *Service) devicesDeleted(user string, devices []string) {
	// Their tokens are gone from the store; drop the cached sessions too.
	s.sessions.dropDevices(user, devices)
	s.seenMu.Lock()
	for _, d := range devices {
		delete(s.seen, user+"\x00"+d)
	}
	s.seenMu.Unlock()
	if len(devices) == 0 {
		return
	}
	s.obsMu.RLock()
	o := s.obs
	s.obsMu.RUnlock()
	if o != nil {
		o.DevicesDeleted(user, devices)
	}
}

// userID makes the full user ID of a local localpart.
func (s *Service) userID(localpart string) string { return "@" + localpart + ":" + s.cfg.ServerName }

// isLocal reports whether userID belongs to this server.
func (s *Service) isLocal(userID string) bool {
	return strings.HasSuffix(userID, ":"+s.cfg.ServerName) && strings.HasPrefix(userID, "@")
}

// storeErr maps an unexpected store error to a 500, keeping Matrix errors.
func storeErr(err error) error {
	var e *mxerr.Error
	if errors.As(err, &e) {
		return e
	}
	return err
}

func userDeactivated() *mxerr.Error {
	return mxerr.New(403, "M_USER_DEACTIVATED", "this account has been deactivated")
}

// sessionCache maps access-token hashes to sessions: every request
// authenticates, and a map lookup is cheaper than a bbolt read. Entries are
// dropped when tokens are revoked; gen makes sure a lookup that read the
// database before a revocation cannot put the revoked session back.
type sessionCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[TokenHash]cachedSession
}

type cachedSession struct {
	Session
	expires int64 // ms; 0 = never
}

// maxCachedSessions bounds the cache; past it the cache starts over.
const maxCachedSessions = 4096

func (c *sessionCache) get(h TokenHash) (cachedSession, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ok := c.m[h]
	return cs, c.gen, ok
}

func (c *sessionCache) put(h TokenHash, cs cachedSession, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.m) >= maxCachedSessions {
		clear(c.m)
	}
	c.m[h] = cs
}

// dropUser forgets every cached session of user, or only those of device
// when device is not "".
func (c *sessionCache) dropUser(user, device string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, cs := range c.m {
		if cs.UserID == user && (device == "" || cs.DeviceID == device) {
			delete(c.m, h)
		}
	}
}

// dropDevices forgets the cached sessions of some of a user's devices, in
// one pass over the cache.
func (c *sessionCache) dropDevices(user string, devices []string) {
	if len(devices) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, cs := range c.m {
		if cs.UserID == user && slices.Contains(devices, cs.DeviceID) {
			delete(c.m, h)
		}
	}
}

func logHookErr(what, user string, err error) {
	if err != nil {
		slog.Error("account hook failed", "hook", what, "user", user, "err", err)
	}
}
