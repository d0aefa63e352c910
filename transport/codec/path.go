package codec

import "strconv"

// pathElem is one step into a JSON document: an object key or an array
// index. Error messages name the offending field with a path of them
// (content.values[2]) because the people reading those messages are
// writing sensor firmware and need to know exactly which field to fix.
type pathElem struct {
	key     string
	index   int
	isIndex bool
}

// formatPath renders a path as dotted keys and [n] indices. Keys that are
// not plain identifiers are written ["like.this"] so the path stays
// unambiguous.
func formatPath(path []pathElem) string {
	var b []byte
	for i, p := range path {
		switch {
		case p.isIndex:
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(p.index), 10)
			b = append(b, ']')
		case plainKey(p.key):
			if i > 0 {
				b = append(b, '.')
			}
			b = append(b, p.key...)
		default:
			b = append(b, '[')
			b = appendJSONString(b, p.key)
			b = append(b, ']')
		}
	}
	return string(b)
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c == '-' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
