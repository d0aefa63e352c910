package filter

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// SplitPath splits a dot-separated property path into property names:
// `\.` is a literal dot, `\\` a literal backslash, and any other backslash
// stays as it is (spec appendices: "Dot-separated property paths").
func SplitPath(path string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '\\' && i+1 < len(path) && (path[i+1] == '.' || path[i+1] == '\\'):
			i++
			cur.WriteByte(path[i])
		case c == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

// ProjectFields keeps only the listed dotted paths of an event (the
// filter's event_fields). A path that is missing, or that runs through a
// non-object, contributes nothing; no empty parent objects are invented.
// Kept values are copied byte for byte (compacted); object keys come out
// sorted. A nil or empty fields list returns the event unchanged: the spec
// allows a server to include more fields than were requested, and an event
// with no fields at all is of no use to a client.
func ProjectFields(eventJSON []byte, fields []string) ([]byte, error) {
	if len(fields) == 0 {
		return eventJSON, nil
	}
	t := &trie{}
	for _, f := range fields {
		t.add(SplitPath(f))
	}
	raw := bytes.TrimSpace(eventJSON)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil, mxerr.BadJSON("event is not a JSON object")
	}
	out, err := t.project(raw)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return []byte("{}"), nil
	}
	return out, nil
}

// trie is a set of paths: leaf means "keep the whole value here".
type trie struct {
	leaf bool
	kids map[string]*trie
}

func (t *trie) add(path []string) {
	for _, p := range path {
		if t.leaf {
			return // an ancestor is kept whole
		}
		if t.kids == nil {
			t.kids = map[string]*trie{}
		}
		k := t.kids[p]
		if k == nil {
			k = &trie{}
			t.kids[p] = k
		}
		t = k
	}
	t.leaf, t.kids = true, nil
}

// project returns the kept part of raw, or nil when nothing is kept.
func (t *trie) project(raw json.RawMessage) ([]byte, error) {
	if t.leaf {
		return raw, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, nil
	}
	var o map[string]json.RawMessage
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, mxerr.BadJSON("event is not valid JSON")
	}
	keep := map[string]json.RawMessage{}
	for k, sub := range t.kids {
		v, ok := o[k]
		if !ok {
			continue
		}
		p, err := sub.project(v)
		if err != nil {
			return nil, err
		}
		if p != nil {
			keep[k] = p
		}
	}
	if len(keep) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(keep))
	for k := range keep {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kj, _ := json.Marshal(k)
		b.Write(kj)
		b.WriteByte(':')
		if err := json.Compact(&b, keep[k]); err != nil {
			return nil, mxerr.BadJSON("event is not valid JSON")
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
