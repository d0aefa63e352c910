package urlpreview

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// Limits on what one page contributes to a preview: the result is cached
// in memory and sent to every client that shows the link.
const (
	maxProps    = 64   // og:* properties kept
	maxValueLen = 1000 // runes per value; longer ones end in "…"
)

// parseHTML extracts the OpenGraph properties of a page (already UTF-8):
// every <meta property="og:..." content="..."> (first occurrence wins,
// as the first og:image is the primary one), with og:title falling back
// to <title> and og:description to <meta name="description">.
//
// It tokenizes instead of building a tree: a tree of a 1 MiB page costs
// several MiB on a board, and og tags need no tree.
func parseHTML(page string) map[string]string {
	og := map[string]string{}
	var title, description string
	z := html.NewTokenizer(strings.NewReader(page))
	// foreign counts open <svg>/<math>: their <title> is not the page's.
	foreign := 0
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			// io.EOF, or the end of a page truncated at the size cap:
			// what was read so far is the preview.
			if og["og:title"] == "" && title != "" {
				og["og:title"] = title
			}
			if og["og:description"] == "" && description != "" {
				og["og:description"] = description
			}
			return og
		case html.EndTagToken:
			name, _ := z.TagName()
			if (string(name) == "svg" || string(name) == "math") && foreign > 0 {
				foreign--
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			switch string(name) {
			case "svg", "math":
				if tt == html.StartTagToken {
					foreign++
				}
			case "title":
				// The tokenizer reads <title> as RCDATA: the next token
				// is its whole text, entities decoded.
				if tt == html.StartTagToken && foreign == 0 && title == "" && z.Next() == html.TextToken {
					title = clean(string(z.Text()))
				}
			case "meta":
				if !hasAttr {
					continue
				}
				var prop, nameAttr, content string
				hasContent := false
				for more := true; more; {
					var k, v []byte
					k, v, more = z.TagAttr()
					switch string(k) {
					case "property":
						prop = strings.ToLower(strings.TrimSpace(string(v)))
					case "name":
						nameAttr = strings.ToLower(strings.TrimSpace(string(v)))
					case "content":
						content, hasContent = string(v), true
					}
				}
				if !hasContent {
					continue
				}
				// Some sites put og: in name= instead of property=.
				if prop == "" && strings.HasPrefix(nameAttr, "og:") {
					prop = nameAttr
				}
				switch {
				case strings.HasPrefix(prop, "og:") && len(prop) <= 64:
					if v := clean(content); v != "" && og[prop] == "" && len(og) < maxProps {
						og[prop] = v
					}
				case nameAttr == "description" && description == "":
					description = clean(content)
				}
			}
		}
	}
}

// clean collapses whitespace and caps the length.
func clean(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= maxValueLen {
		return s
	}
	n := 0
	for i := range s {
		if n == maxValueLen-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
