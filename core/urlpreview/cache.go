package urlpreview

import (
	"container/list"
	"time"
)

// entry is a cached preview or failure.
type entry struct {
	og      map[string]any
	err     error
	expires time.Time
}

// lru is a bounded least-recently-used cache; the Previewer's mutex
// guards it.
type lru struct {
	max   int
	order *list.List // front = most recent; values are *lruItem
	items map[string]*list.Element
}

type lruItem struct {
	key string
	e   entry
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *lru) get(key string, now time.Time) (entry, bool) {
	el, ok := c.items[key]
	if !ok {
		return entry{}, false
	}
	it := el.Value.(*lruItem)
	if !now.Before(it.e.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return entry{}, false
	}
	c.order.MoveToFront(el)
	return it.e, true
}

func (c *lru) put(key string, e entry) {
	if el, ok := c.items[key]; ok {
		el.Value.(*lruItem).e = e
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&lruItem{key: key, e: e})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*lruItem).key)
	}
}

func (c *lru) len() int { return c.order.Len() }
