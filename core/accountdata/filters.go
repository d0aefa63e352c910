package accountdata

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"

	"github.com/lichen-hs/lichen/core/filter"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// FilterStore keeps uploaded filters (spec "Filtering", filter.yaml).
// Filters are immutable once stored.
type FilterStore interface {
	// PutFilter stores a filter's canonical JSON and returns its ID: a
	// per-user counter in decimal. Storing the same canonical JSON again
	// returns the existing ID (clients upload their filter at every start).
	PutFilter(user string, canonical []byte) (id string, err error)
	// Filter returns a stored filter's canonical JSON, ErrNotFound if none.
	Filter(user, id string) ([]byte, error)
}

// Filters creates and loads user filters. Parsed filters are cached: the
// sync handler loads the client's filter on every long-poll.
type Filters struct {
	store FilterStore

	mu    sync.Mutex
	cache map[string]*filter.Filter // user\0id -> parsed, shared read-only
}

// maxCachedFilters bounds the parsed-filter cache; when full it is emptied.
const maxCachedFilters = 512

// NewFilters makes a filter store front.
func NewFilters(store FilterStore) *Filters {
	return &Filters{store: store, cache: map[string]*filter.Filter{}}
}

// Create validates and stores a filter for user (POST /user/{userId}/
// filter): 403 for another user; 400 M_NOT_JSON / M_BAD_JSON for a body
// that is not a valid filter (filter.Parse).
func (f *Filters) Create(caller, user string, body []byte) (string, error) {
	if err := checkOwner(caller, user); err != nil {
		return "", mxerr.Forbidden("cannot create filters for other users")
	}
	if len(body) == 0 {
		return "", mxerr.NotJSON("request body must be a filter object")
	}
	parsed, err := filter.Parse(body)
	if err != nil {
		return "", err
	}
	return f.store.PutFilter(user, filter.Canonical(parsed))
}

// Get returns a stored filter as JSON (GET /user/{userId}/filter/
// {filterId}): 403 for another user, 404 M_NOT_FOUND for an unknown ID.
func (f *Filters) Get(caller, user, id string) (json.RawMessage, error) {
	if err := checkOwner(caller, user); err != nil {
		return nil, mxerr.Forbidden("cannot read filters of other users")
	}
	if !validFilterID(id) {
		return nil, mxerr.NotFound("unknown filter")
	}
	js, err := f.store.Filter(user, id)
	if errors.Is(err, ErrNotFound) {
		return nil, mxerr.NotFound("unknown filter")
	}
	return js, err
}

// Load returns a user's stored filter parsed, 404 M_NOT_FOUND for an
// unknown ID. The result is shared: callers must not modify it.
func (f *Filters) Load(user, id string) (*filter.Filter, error) {
	if !validFilterID(id) {
		return nil, mxerr.NotFound("unknown filter")
	}
	k := user + "\x00" + id
	f.mu.Lock()
	p := f.cache[k]
	f.mu.Unlock()
	if p != nil {
		return p, nil
	}
	js, err := f.store.Filter(user, id)
	if errors.Is(err, ErrNotFound) {
		return nil, mxerr.NotFound("unknown filter")
	}
	if err != nil {
		return nil, err
	}
	p, err = filter.Parse(js)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if len(f.cache) >= maxCachedFilters {
		clear(f.cache)
	}
	f.cache[k] = p
	f.mu.Unlock()
	return p, nil
}

// validFilterID accepts the IDs PutFilter hands out: decimal counters.
func validFilterID(id string) bool {
	if id == "" || len(id) > 20 {
		return false
	}
	_, err := strconv.ParseUint(id, 10, 64)
	return err == nil
}
