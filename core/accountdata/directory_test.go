package accountdata

import (
	"strings"
	"testing"
)

func TestDirectorySearch(t *testing.T) {
	users := []Profile{
		{UserID: "@alice:board.local", DisplayName: "Alice Liddell"},
		{UserID: "@bob:board.local", DisplayName: "Bob"},
		{UserID: "@malice:board.local"},
		{UserID: "@carol:board.local", DisplayName: "Carol Alison", AvatarURL: "mxc://board.local/c"},
		{UserID: "@sensor1:board.local"},
	}
	hidden := func(searcher string) func(string) bool {
		return func(user string) bool { return user != "@bob:board.local" }
	}
	tests := []struct {
		name    string
		visible Scope
		term    string
		limit   int
		want    string
		limited bool
	}{
		{"prefix before substring, named first", nil, "ali", 0, "@alice:board.local,@carol:board.local,@malice:board.local", false},
		{"case-insensitive display name", nil, "LIDDELL", 0, "@alice:board.local", false},
		{"server name does not match everyone", nil, "board", 0, "", false},
		{"full user ID", nil, "@bob:board", 0, "@bob:board.local", false},
		{"limit", nil, "ali", 2, "@alice:board.local,@carol:board.local", true},
		{"empty term lists all", nil, "", 0, "@alice:board.local,@bob:board.local,@carol:board.local,@malice:board.local,@sensor1:board.local", false},
		{"visibility hook", hidden, "bob", 0, "", false},
		{"no match", nil, "zed", 0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDirectory(func() []Profile { return users }, tc.visible)
			res, limited, err := d.Search("@alice:board.local", tc.term, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range res {
				ids = append(ids, p.UserID)
			}
			if got := strings.Join(ids, ","); got != tc.want || limited != tc.limited {
				t.Fatalf("got %q limited=%v, want %q limited=%v", got, limited, tc.want, tc.limited)
			}
		})
	}
	if _, _, err := NewDirectory(func() []Profile { return users }, nil).Search("@a:x", "a", -1); err == nil {
		t.Fatal("negative limit accepted")
	}
}
