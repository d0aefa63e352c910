package accountdata

import (
	"sort"
	"strings"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// User directory search (spec "User Directory", users.yaml). The server
// may choose which users are searched, but MUST at least consider users
// who share a room with the searcher or are joined to public or
// world-readable rooms. The Scope hook (rooms.Service.DirectoryScope)
// decides; a board has a handful of local users, so they are scanned in
// memory. Remote users are not searched.

// Profile is a user directory entry.
type Profile struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// ListUsers returns the local users that are not deactivated, with their
// global profiles.
type ListUsers func() []Profile

// Scope returns, for one search, whether searcher may find a user; nil
// means every local user is visible.
type Scope func(searcher string) func(user string) bool

// Directory answers user directory searches.
type Directory struct {
	list  ListUsers
	scope Scope
}

// Search limits (users.yaml: limit "Defaults to 10"; the maximum is ours).
const (
	DefaultSearchLimit = 10
	MaxSearchLimit     = 50
)

// NewDirectory makes the directory over list, narrowed by scope if set.
func NewDirectory(list ListUsers, scope Scope) *Directory {
	return &Directory{list: list, scope: scope}
}

// Search matches term case-insensitively against user IDs and display
// names. Results are ranked: a match at the start of the localpart or
// display name first, then other matches; within a rank users with a
// display name, then by user ID. limited reports truncation.
func (d *Directory) Search(searcher, term string, limit int) (results []Profile, limited bool, err error) {
	if limit < 0 {
		return nil, false, mxerr.InvalidParam("limit must not be negative")
	}
	if limit == 0 {
		limit = DefaultSearchLimit
	}
	limit = min(limit, MaxSearchLimit)
	term = strings.ToLower(strings.TrimSpace(term))
	type hit struct {
		p    Profile
		rank int
	}
	var hits []hit
	var visible func(string) bool
	if d.scope != nil {
		visible = d.scope(searcher)
	}
	for _, p := range d.list() {
		r, ok := matchRank(p, term)
		if !ok || visible != nil && !visible(p.UserID) {
			continue
		}
		hits = append(hits, hit{p, r})
	}
	sort.Slice(hits, func(i, j int) bool {
		a, b := hits[i], hits[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if (a.p.DisplayName != "") != (b.p.DisplayName != "") {
			return a.p.DisplayName != ""
		}
		return a.p.UserID < b.p.UserID
	})
	if len(hits) > limit {
		hits, limited = hits[:limit], true
	}
	results = make([]Profile, len(hits))
	for i, h := range hits {
		results[i] = h.p
	}
	return results, limited, nil
}

// matchRank is 0 for a prefix match of the localpart or of a word of the
// display name, 1 for any other substring match.
func matchRank(p Profile, term string) (int, bool) {
	if term == "" {
		return 1, true
	}
	id := strings.ToLower(p.UserID)
	if strings.HasPrefix(term, "@") {
		// A (partial) user ID: match it against the whole ID.
		if strings.HasPrefix(id, term) {
			return 0, true
		}
		term = term[1:]
	}
	// The server name is the same for every local user: match the
	// localpart only.
	local, _, _ := strings.Cut(strings.TrimPrefix(id, "@"), ":")
	name := strings.ToLower(p.DisplayName)
	if term == "" {
		return 1, true
	}
	if strings.HasPrefix(local, term) || strings.HasPrefix(name, term) {
		return 0, true
	}
	for _, w := range strings.Fields(name) {
		if strings.HasPrefix(w, term) {
			return 0, true
		}
	}
	if strings.Contains(local, term) || strings.Contains(name, term) {
		return 1, true
	}
	return 0, false
}
