package syncer

import (
	"sync"

	"github.com/lichen-hs/lichen/core/pushrules"
	"github.com/lichen-hs/lichen/core/rooms"
)

// Unread counts notifying events after the user's read receipt
// (spec: "Receiving notifications", unread_notifications in /sync). The
// counts are computed at sync time from the push rules, and kept per
// (user, room) in memory so each event is evaluated once: a sync only
// evaluates the events that arrived since the last one.
type unreadCache struct {
	mu sync.Mutex
	m  map[[2]string]*unreadEntry
}

type unreadEntry struct {
	from, scanned uint64 // receipt position; last position evaluated
	notif, hl     int
}

// maxUnreadScan bounds the work for a room with a long unread backlog; the
// counts then say "at least".
const maxUnreadScan = 500

func (e *Engine) unread(user, roomID string, joinPos, upto uint64) *UnreadCounts {
	if e.src.Rules == nil || e.src.ReadPos == nil {
		return nil
	}
	from := e.src.ReadPos(user, roomID)
	if from < joinPos {
		from = joinPos
	}
	k := [2]string{user, roomID}
	e.unreadC.mu.Lock()
	ent := e.unreadC.m[k]
	if ent == nil || ent.from != from {
		ent = &unreadEntry{from: from, scanned: from}
		e.unreadC.m[k] = ent
	}
	scanned, notif, hl := ent.scanned, ent.notif, ent.hl
	e.unreadC.mu.Unlock()
	if scanned < upto {
		rs := e.src.Rules(user)
		pc, err := e.rooms.PushContextFor(user, roomID)
		if rs != nil && err == nil {
			n := 0
			_ = e.store.Timeline(roomID, scanned, rooms.Forward, func(rec rooms.EventRecord) bool {
				if rec.Pos > upto || n >= maxUnreadScan {
					return false
				}
				n++
				scanned = rec.Pos
				if rec.Sender == user {
					return true
				}
				ev, err := pushrules.NewEventView(rec.JSON)
				if err != nil {
					return true
				}
				actions, _ := pushrules.Evaluate(*rs, ev, pushrules.Context{
					UserID: user, DisplayName: pc.DisplayName, MemberCount: pc.MemberCount,
					SenderPowerLevel: pc.Level(rec.Sender), NotificationPowerLevels: pc.Notifications,
				})
				if pushrules.Notifies(actions) {
					notif++
					if pushrules.Highlights(actions) {
						hl++
					}
				}
				return true
			})
			if n < maxUnreadScan {
				scanned = max(scanned, upto)
			}
		}
		e.unreadC.mu.Lock()
		if cur := e.unreadC.m[k]; cur == ent {
			ent.scanned, ent.notif, ent.hl = scanned, notif, hl
		}
		e.unreadC.mu.Unlock()
	}
	return &UnreadCounts{Notification: notif, Highlight: hl}
}
